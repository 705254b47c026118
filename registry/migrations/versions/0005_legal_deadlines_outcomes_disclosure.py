"""legal deadlines, outcomes, disclosure bases

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 04:54:47.341656
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('disclosure_basis',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('agency_type', sa.String(length=48), nullable=False),
    sa.Column('basis', sa.String(length=128), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_type'], ['agency_type.code'], ),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'agency_type')
    )
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legal_basis', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('outcomes', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('outcome', sa.String(length=48), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_column('outcome')
        batch_op.drop_column('outcomes')
        batch_op.drop_column('legal_basis')

    op.drop_table('disclosure_basis')
