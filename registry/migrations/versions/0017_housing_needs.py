"""housing support: the needs a coordinator assessed for a case, as codes

A housing-support case hands off one referral per assessed need (registry.housing.NEEDS); the
coordinator records them with `yeongye housing needs`. Codes only, never amounts.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'housing_need',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id', 'code'),
    )
    op.create_index('ix_housing_need_case_id', 'housing_need', ['case_id'])


def downgrade() -> None:
    op.drop_index('ix_housing_need_case_id', table_name='housing_need')
    op.drop_table('housing_need')
