"""partner programmes: the kind of a programme case; mh-program cases become program / mind-health

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The mind-health programme's service codes before and after it became one kind of partner programme.
SERVICES = {'mh-program': 'program-planning', 'mh-program-report': 'program-report'}

case = sa.table(
    'case',
    sa.column('id', sa.Integer()),
    sa.column('intervention', sa.String()),
    sa.column('program_kind', sa.String()),
)
referral = sa.table('referral', sa.column('case_id', sa.Integer()), sa.column('service', sa.String()))


def upgrade() -> None:
    with op.batch_alter_table('case') as batch:
        batch.add_column(sa.Column('program_kind', sa.String(length=16), nullable=True))
    op.execute(
        case.update()
        .where(case.c.intervention == 'mh-program')
        .values(intervention='program', program_kind='mind-health')
    )
    for old, new in SERVICES.items():
        op.execute(referral.update().where(referral.c.service == old).values(service=new))


def downgrade() -> None:
    # Only mind-health programmes existed before; the other kinds have no intervention to go back to
    # and stay "program" cases.
    mind_health = sa.select(case.c.id).where(case.c.program_kind == 'mind-health')
    for old, new in SERVICES.items():
        op.execute(
            referral.update()
            .where(referral.c.service == new, referral.c.case_id.in_(mind_health))
            .values(service=old)
        )
    op.execute(case.update().where(case.c.program_kind == 'mind-health').values(intervention='mh-program'))
    with op.batch_alter_table('case') as batch:
        batch.drop_column('program_kind')
