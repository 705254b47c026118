"""outbox threading

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:18:45.728986
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('in_reply_to', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('thread_refs', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('thread_refs')
        batch_op.drop_column('in_reply_to')
        batch_op.drop_column('reply_to')

