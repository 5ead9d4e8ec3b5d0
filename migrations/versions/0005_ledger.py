"""ledger: the tamper-evident chain of readings received and admin acts; the admin log locked

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27 09:00:00.000000
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db
from common import clock
from common.wire import iso
from server.core import ledger

revision: str = '0005'
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Append-only, for every role: the database refuses to change or delete a link or a log row.
_LOCKED = {
    "ledger": "the ledger is append-only: its entries are never changed or deleted",
    "audit_log": "the admin log is append-only: its entries are never changed or deleted",
}


def upgrade() -> None:
    op.create_table('ledger',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger'))
    )
    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_head'))
    )
    for table, message in _LOCKED.items():
        _create_lock(table, message)
    _chain_what_is_already_there()


def downgrade() -> None:
    for table in _LOCKED:
        _drop_lock(table)
    op.drop_table('ledger_head')
    op.drop_table('ledger')


def _chain_what_is_already_there() -> None:
    """Readings and admin acts stored before the chain existed get their links now, in the
    order they happened, so that `gridwalk verify` vouches for them from here on."""
    conn = op.get_bind()
    utc = server.core.db.UTCDateTime()
    logs = sa.table(
        "audit_log", sa.column("id"), sa.column("at", utc), sa.column("actor_id"),
        sa.column("action"), sa.column("object_type"), sa.column("object_id"),
        sa.column("detail", sa.JSON()),
    )
    readings = sa.table(
        "readings", sa.column("id", sa.Uuid()), sa.column("received_at", utc),
        sa.column("content_hash"),
    )
    links: list[tuple[Any, ...]] = [
        (row.at, 0, row.id, ledger.Link(
            row.action, "admin_log", str(row.id),
            ledger.admin_log_hash(
                id=row.id, at=row.at, actor_id=row.actor_id, action=row.action,
                object_type=row.object_type, object_id=row.object_id, detail=row.detail,
            ),
        ))
        for row in conn.execute(sa.select(logs))
    ]
    links += [
        (row.received_at, 1, str(row.id),
         ledger.Link("reading.received", "reading", str(row.id), row.content_hash))
        for row in conn.execute(sa.select(readings))
    ]
    links.sort(key=lambda link: link[:3])
    prev, now = ledger.GENESIS, clock.now()
    entries = []
    for seq, (*_, link) in enumerate(links, start=1):
        content = {"seq": seq, "at": iso(now), "action": link.action,
                   "subject": link.subject, "subject_id": link.subject_id,
                   "content_hash": link.content_hash}
        digest = ledger.entry_hash(prev, content)
        entries.append({**content, "at": now, "prev_hash": prev, "hash": digest})
        prev = digest
    chain = sa.table(
        "ledger", sa.column("seq"), sa.column("at", utc), sa.column("action"),
        sa.column("subject"), sa.column("subject_id"), sa.column("content_hash"),
        sa.column("prev_hash"), sa.column("hash"),
    )
    if entries:
        conn.execute(sa.insert(chain), entries)
    conn.execute(
        sa.text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, :seq, :hash)"),
        {"seq": len(entries), "hash": prev},
    )


def _create_lock(table: str, message: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION gridwalk_{table}_locked() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_locked BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION gridwalk_{table}_locked()
        """)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER {table}_locked_{verb.lower()} BEFORE {verb} ON {table}
                BEGIN SELECT RAISE(ABORT, '{message}'); END
            """)


def _drop_lock(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_locked ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS gridwalk_{table}_locked()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_locked_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_locked_delete")
