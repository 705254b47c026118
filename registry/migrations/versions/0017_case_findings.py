"""case findings: what a coordinator found about a case, as codes of a kind

A housing-support case hands off one referral per assessed need (registry.housing.NEEDS, recorded
with `yeongye housing needs`); a hoarding case branches on what its home visit found
(registry.hoarding.FINDINGS, `yeongye hoarding findings`). Codes only, never amounts or reasons.

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
        'case_finding',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id', 'kind', 'code'),
    )
    op.create_index('ix_case_finding_case_id', 'case_finding', ['case_id'])


def downgrade() -> None:
    op.drop_index('ix_case_finding_case_id', table_name='case_finding')
    op.drop_table('case_finding')
