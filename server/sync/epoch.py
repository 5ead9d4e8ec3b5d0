"""The data epoch: which life of the server's data the devices are talking to.

A restore from backup rewinds the server: readings, events and track points received after the
backup are gone, and the handhelds, which were told `accepted`, would never send them again.
The operator then runs `gridwalk new-data-epoch`; every pull page and push answer carries the
epoch, and a handheld that sees it change pushes again every record it still holds (the push is
idempotent, so what the backup kept is answered `duplicate`) and pulls again from the start.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from common import clock
from server.models import DataEpoch

EPOCH_ROW = 1


# Read by every push and pull: a statement, not an object loaded (a fifth of the time).
_CURRENT = select(col(DataEpoch.value)).where(col(DataEpoch.id) == EPOCH_ROW)


def current(session: Session) -> str | None:
    """The epoch the devices are told (None only on a database the migrations did not make)."""
    value: str | None = session.connection().execute(_CURRENT).scalar_one_or_none()
    return value


def renew(session: Session) -> str:
    """Start a new epoch (after a restore); the caller's unit of work commits it."""
    row = session.get(DataEpoch, EPOCH_ROW) or DataEpoch(id=EPOCH_ROW, value="")
    row.value = str(uuid.uuid4())
    row.started_at = clock.now()
    session.add(row)
    session.flush()
    return row.value
