"""detection sweep: risk_signal and risk_flag rows name their sweep without a foreign key

A first sweep writes a quarter of a million signal rows and tens of thousands of flags in one
transaction with their sweep_run row; PostgreSQL checked the key row by row (1.7 s of a 9 s
sweep, growing with the number of earlier sweeps). The sweep alone writes these rows, so the
reference cannot dangle; the primary keys and the sweep_id index they lead with stay.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 03:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('risk_signal', 'risk_flag')
# A fresh SQLite database holds the keys of 0007 unnamed: batch mode names them by this convention.
NAMING = {'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s'}


def upgrade() -> None:
    for table in TABLES:
        for key in sa.inspect(op.get_bind()).get_foreign_keys(table):
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                batch.drop_constraint(key['name'] or f'fk_{table}_sweep_id_sweep_run', type_='foreignkey')


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f'{table}_sweep_id_fkey', 'sweep_run', ['sweep_id'], ['id'])
