"""notes and incidents: what Prefect must not hold, kept here and referred to by id

``note`` holds the free text people type for a case (reasons, a conference's place); the forms
Prefect stores carry a note's id. ``incident`` holds a failed task's error in full; Prefect sees
its class and ``incident-<id>``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'note',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('written_by', sa.String(length=64), nullable=False),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_note_case_id', 'note', ['case_id'])
    op.create_table(
        'incident',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('case_ref', sa.String(length=64), nullable=True),
        sa.Column('task', sa.String(length=64), nullable=False),
        sa.Column('error_class', sa.String(length=128), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('incident')
    op.drop_index('ix_note_case_id', table_name='note')
    op.drop_table('note')
