"""outbox relay and launch recovery

The outbox relay retries a message later (``next_attempt_at``, with backoff) and parks a message
the mail server refused for good as ``failed``; the index serves its "what is due now" query. A
case keeps the parameters its flow run was created with (``run_parameters``), so a run that could
not be created at launch, or that went missing, is created again with the same ones.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_outbox_due', 'outbox', ['status', 'next_attempt_at'])
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_parameters', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_column('run_parameters')
    op.drop_index('ix_outbox_due', table_name='outbox')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
