"""centres, staff accounts and signed inputs

``centre`` is the central centre and the district centres; a complex and a member of staff
belong to one (rows from before stay without a centre until the registry is loaded again).
``staff.password_hash`` and ``staff_session`` let staff log in (registry.accounts). ``act``
records who gave each input to a waiting case (registry.acts); ``case.opened_by`` who launched it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'centre',
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('code'),
    )
    with op.batch_alter_table('complex') as batch:
        batch.add_column(sa.Column('centre_code', sa.String(length=16), nullable=True))
        batch.create_foreign_key('fk_complex_centre', 'centre', ['centre_code'], ['code'])
    with op.batch_alter_table('staff') as batch:
        batch.add_column(sa.Column('centre_code', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('password_hash', sa.String(length=256), nullable=True))
        batch.create_foreign_key('fk_staff_centre', 'centre', ['centre_code'], ['code'])
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('opened_by', sa.String(length=64), nullable=True))
    op.create_table(
        'staff_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.String(length=64), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_table(
        'act',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('wait_key', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_act_case_id', 'act', ['case_id'])


def downgrade() -> None:
    op.drop_index('ix_act_case_id', table_name='act')
    op.drop_table('act')
    op.drop_table('staff_session')
    with op.batch_alter_table('case') as batch:
        batch.drop_column('opened_by')
    with op.batch_alter_table('staff') as batch:
        batch.drop_constraint('fk_staff_centre', type_='foreignkey')
        batch.drop_column('password_hash')
        batch.drop_column('centre_code')
    with op.batch_alter_table('complex') as batch:
        batch.drop_constraint('fk_complex_centre', type_='foreignkey')
        batch.drop_column('centre_code')
    op.drop_table('centre')
