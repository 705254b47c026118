"""referral due time: life-safety steps run on clocks in hours

``referral.due_at`` is set for a step whose clock counts hours on every day (an outreach case
with no sign of life); the deadline ladder then runs in hours (registry.escalation).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('referral') as batch:
        batch.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('referral') as batch:
        batch.drop_column('due_at')
