"""audit trail: append-only, hash-chained

The audit table becomes an access record PIPA can rely on: each row names the resident it
concerns and the purpose given, and carries a SHA-256 hash chained to the row before it
(registry.audit). Rows written before this revision are hashed here, in id order, with their
resident taken from their case. ``audit_head`` holds the end of the chain; every append locks it.
Triggers then make the database refuse UPDATE and DELETE on the trail (and on the head, DELETE).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:20:00
"""
from typing import cast

from alembic import op
import sqlalchemy as sa

from registry.audit import GENESIS, HEAD_ID, chain_hash
from registry.models import AuditEntry


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_REFUSED = "감사 기록은 추가만 할 수 있습니다 (the audit trail is append-only)"

_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, '{_REFUSED}: UPDATE'); END",
    f"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE'); END",
    f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE'); END",
)
_POSTGRES_TRIGGERS = (
    "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{_REFUSED}: % %', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)


def upgrade() -> None:
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resident_ref', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_audit_resident_ref', ['resident_ref'], unique=False)
    op.create_table(
        'audit_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    rows, last = _chain_existing_rows()
    op.execute(sa.text("INSERT INTO audit_head (id, rows, hash) VALUES (:id, :rows, :hash)").bindparams(
        id=HEAD_ID, rows=rows, hash=last
    ))
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
    statements = _POSTGRES_TRIGGERS if op.get_bind().dialect.name == 'postgresql' else _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def _chain_existing_rows() -> tuple[int, str]:
    """Name each existing row's resident (its case's) and hash the rows in id order.

    Rows are read through the model's column types, so the values hashed are the ones
    registry.audit.verify will read back.
    """
    connection = op.get_bind()
    audit = cast(sa.Table, AuditEntry.__table__)
    case = sa.table('case', sa.column('id', sa.Integer()), sa.column('resident_ref', sa.String()))
    query = (
        sa.select(
            audit.c.id,
            audit.c.at,
            audit.c.case_id,
            audit.c.actor,
            audit.c.action,
            audit.c.detail,
            case.c.resident_ref,
        )
        .select_from(audit.outerjoin(case, case.c.id == audit.c.case_id))
        .order_by(audit.c.id)
    )
    last, rows = GENESIS, 0
    for row in connection.execute(query).all():
        entry = AuditEntry(
            at=row.at,
            case_id=row.case_id,
            actor=row.actor,
            action=row.action,
            detail=row.detail,
            purpose=None,
            resident_ref=row.resident_ref,
        )
        digest = chain_hash(last, entry)
        connection.execute(
            sa.update(audit)
            .where(audit.c.id == row.id)
            .values(resident_ref=row.resident_ref, prev_hash=last, hash=digest)
        )
        last, rows = digest, rows + 1
    return rows, last


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for trigger, table in (
            ('audit_no_change', 'audit'),
            ('audit_no_truncate', 'audit'),
            ('audit_head_no_delete', 'audit_head'),
            ('audit_head_no_truncate', 'audit_head'),
        ):
            op.execute(f'DROP TRIGGER IF EXISTS {trigger} ON {table}')
        op.execute('DROP FUNCTION IF EXISTS audit_append_only()')
    else:
        for trigger in ('audit_no_update', 'audit_no_delete', 'audit_head_no_delete'):
            op.execute(f'DROP TRIGGER IF EXISTS {trigger}')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_resident_ref')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('purpose')
        batch_op.drop_column('resident_ref')
