"""The change counter behind the sync cursor, and the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from server.models import AuditLog


def next_change_seq(session: Session) -> int:
    """Take the next change number for this transaction.

    The UPDATE holds the counter's row lock until commit, so numbers are handed out in commit
    order: a pull that has seen number N has seen every change numbered below N.
    """
    value = session.execute(
        text("UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value")
    ).scalar_one()
    return int(value)


def committed_change_seq(session: Session) -> int:
    """The highest change number whose transaction has committed."""
    return int(session.execute(text("SELECT value FROM change_counter WHERE id = 1")).scalar_one())


def record_audit(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            detail=detail,
        )
    )
