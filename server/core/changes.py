"""The change counter behind the sync cursor, stamped in one place; and the admin log.

Every row that reaches a handheld carries `change_seq`. It is stamped here, by a flush hook on
every ORM session: whatever adds or changes such a row gets the next number, and no service can
forget to. Bulk statements that bypass the ORM (the meter import) take theirs from
`next_change_seq` too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, event, text, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from server.core.db import array_text
from server.models import AdminLog


def next_change_seq(session: OrmSession) -> int:
    """Take the next change number.

    The UPDATE holds the counter's row lock until commit, so numbers are handed out in commit
    order: a pull that has seen number N has seen every change numbered below N. Taken inside a
    savepoint, it is given back with the savepoint's rows if that rolls back.
    """
    # On the session's connection, not session.execute: no autoflush from inside a flush.
    value = (
        session.connection()
        .execute(text("UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value"))
        .scalar_one()
    )
    return int(value)


def stamp(session: OrmSession, table: Table, ids: Collection[int]) -> None:
    """Give the rows of `table` with these ids the next change number (a bulk statement past the
    ORM: a push's meters read). The number is taken here, as late as the caller can, since every
    writer waits for the counter's lock from then to its commit; on PostgreSQL, in the same
    statement as the rows' UPDATE: one round trip under the lock, not two."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(
            update(table).where(table.c.id.in_(ids)).values(change_seq=next_change_seq(session))
        )
        return
    taken = (
        "WITH taken AS (UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value)"
    )
    # The table's name is our own; the ids travel as a parameter.
    rows = (
        f"UPDATE {table.name} SET change_seq = (SELECT value FROM taken) "  # noqa: S608
        "WHERE id = ANY(CAST(:ids AS integer[]))"
    )
    conn.execute(text(f"{taken} {rows}"), {"ids": array_text(ids)})


def touched(obj: object) -> None:
    """A synced row whose dependents changed (a job's crew): it is stamped and sent again."""
    flag_modified(obj, "change_seq")


def is_synced(obj: object) -> bool:
    """A row that reaches handhelds (it has a change_seq column)."""
    return hasattr(type(obj), "change_seq") and hasattr(type(obj), "__table__")


@event.listens_for(OrmSession, "before_flush")
def _stamp_change_seq(session: OrmSession, _flush: UOWTransaction, _instances: Any) -> None:
    """Every synced row this flush adds or changes gets this flush's change number."""
    changed = [o for o in session.new if is_synced(o)] + [
        o for o in session.dirty if is_synced(o) and session.is_modified(o)
    ]
    if changed:
        seq = next_change_seq(session)
        for obj in changed:
            obj.change_seq = seq


def committed_change_seq(session: Session) -> int:
    """The highest change number whose transaction has committed."""
    return int(session.execute(text("SELECT value FROM change_counter WHERE id = 1")).scalar_one())


def log_admin_action(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AdminLog(
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            detail=detail,
        )
    )
