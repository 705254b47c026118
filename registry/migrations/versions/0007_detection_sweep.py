"""detection sweep: sweep runs, risk signals, risk flags

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 06:00:05.904058
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sweep_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('households', sa.Integer(), nullable=False),
    sa.Column('flagged', sa.Integer(), nullable=False),
    sa.Column('new_cases', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('risk_flag',
    sa.Column('sweep_id', sa.Integer(), nullable=False),
    sa.Column('resident_ref', sa.String(length=32), nullable=False),
    sa.Column('flag', sa.String(length=24), nullable=False),
    sa.Column('complex_code', sa.String(length=8), nullable=False),
    sa.Column('new', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweep_run.id'], ),
    sa.PrimaryKeyConstraint('sweep_id', 'resident_ref', 'flag')
    )
    op.create_table('risk_signal',
    sa.Column('sweep_id', sa.Integer(), nullable=False),
    sa.Column('resident_ref', sa.String(length=32), nullable=False),
    sa.Column('complex_code', sa.String(length=8), nullable=False),
    sa.Column('fee_arrears_months', sa.Integer(), nullable=False),
    sa.Column('rent_arrears_months', sa.Integer(), nullable=False),
    sa.Column('days_without_contact', sa.Integer(), nullable=False),
    sa.Column('power_cut', sa.Boolean(), nullable=False),
    sa.Column('water_cut', sa.Boolean(), nullable=False),
    sa.Column('gas_cut', sa.Boolean(), nullable=False),
    sa.Column('odour_pest_complaints', sa.Integer(), nullable=False),
    sa.Column('lives_alone', sa.Boolean(), nullable=False),
    sa.Column('age', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweep_run.id'], ),
    sa.PrimaryKeyConstraint('sweep_id', 'resident_ref')
    )


def downgrade() -> None:
    op.drop_table('risk_signal')
    op.drop_table('risk_flag')
    op.drop_table('sweep_run')
