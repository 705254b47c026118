"""job placement: whether the resident already takes part in another government job programme

Senior jobs exclude anyone already in another government job programme (korea_domain.md §3.1), so
it is one more fact deciding a job track (registry.jobs); unknown until recorded.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resident') as batch:
        batch.add_column(sa.Column('other_job_programme', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('resident') as batch:
        batch.drop_column('other_job_programme')
