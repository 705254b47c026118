"""job placement: the facts that decide a resident's job track (unknown until recorded)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resident') as batch:
        batch.add_column(sa.Column('basic_pension', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('livelihood_benefit', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('employee_insured', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('ltc_grade', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('resident') as batch:
        batch.drop_column('ltc_grade')
        batch.drop_column('employee_insured')
        batch.drop_column('livelihood_benefit')
        batch.drop_column('basic_pension')
