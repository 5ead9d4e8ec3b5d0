"""The validation queue: assignments to validate again, held in the database (validation_work).

A push stores its data and, in the same transaction, enqueues the assignments the new data
touches (`enqueue`): the work is never lost (it commits with the data) and never exists without
its data (it rolls back with it). The push then answers; it no longer waits for the rules.

Workers drain the queue (`drain`): a thread in each server process (`Workers`, started in the
app's lifespan and woken after each push), `gridwalk validate-pending`, and the tests. Each
item is claimed in a short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
server processes on one database never take the same item; SQLite has one writer, so its
claim is serialised anyway) and validated in a transaction of its own. An item that fails is
put back with its attempt count, its error and a back-off before its next attempt, so a
poison item never blocks the others. A claim older than `validation_claim_lease_s` is taken to
be a crashed worker's and may be claimed again. Two workers cannot validate one assignment at
the same time even then: validate_assignment holds the assignment's row lock.

One row per assignment: pushes that arrive before it is validated coalesce into it (the time
span of their data merged, `version` counted), and a worker deletes the row only if no push
came while it validated; otherwise the row stays, unclaimed, and is validated again.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, case, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from common import clock
from server.billing import feed
from server.core.config import Settings
from server.models import ValidationWork
from server.validation.runner import validate_assignment

logger = logging.getLogger("gridwalk")

ERROR_MAX = 1000  # ValidationWork.last_error

Span = tuple[datetime, datetime]


def merge_span(
    spans: dict[int, Span], assignment_id: int, t_min: datetime, t_max: datetime
) -> None:
    """Add [t_min, t_max] to what `assignment_id` has to judge in `spans`."""
    held = spans.get(assignment_id, (t_min, t_max))
    spans[assignment_id] = (min(held[0], t_min), max(held[1], t_max))


def enqueue(session: Session, spans: Mapping[int, Span], *, now: datetime) -> None:
    """Queue each assignment of `spans` for validation, in the caller's transaction; an
    assignment already queued keeps one row, its span widened and due again now."""
    if not spans:
        return
    session.connection().execute(
        _enqueued(session.get_bind().dialect.name),
        [
            {"assignment_id": assignment_id, "t_min": t_min, "t_max": t_max, "now": now}
            for assignment_id, (t_min, t_max) in sorted(spans.items())  # one lock order
        ],
    )


@functools.cache
def _enqueued(dialect: str) -> Any:
    """enqueue's statement, made once per dialect: made anew at every push, it cost more of
    the server's time than the database's work."""
    table = ValidationWork.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(
        assignment_id=bindparam("assignment_id"),
        t_min=bindparam("t_min"),
        t_max=bindparam("t_max"),
        pending_since=bindparam("now"),
        version=1,
        attempts=0,
        next_attempt_at=bindparam("now"),
    )
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[table.c.assignment_id],
        set_={
            "t_min": case((new.t_min < table.c.t_min, new.t_min), else_=table.c.t_min),
            "t_max": case((new.t_max > table.c.t_max, new.t_max), else_=table.c.t_max),
            "version": table.c.version + 1,
            # New data is due now, even after a failed attempt's back-off: it may be what was
            # missing. The attempt count stays, so a failure backs off further.
            "next_attempt_at": new.next_attempt_at,
        },
    )


def validate_queued(session: Session, settings: Settings) -> int:
    """Validate every queued assignment in the caller's transaction and take it off the queue,
    for a loader that pushes and validates as one unit of work (the demo); returns how many."""
    items = session.exec(select(ValidationWork).order_by(col(ValidationWork.assignment_id))).all()
    for item in items:
        validate_assignment(session, assignment_id=item.assignment_id, settings=settings)
        session.delete(item)
    session.flush()
    for item in items:
        feed.append_ready(
            session, assignment_id=item.assignment_id, thresholds=settings.thresholds()
        )
    return len(items)


def pending(session: Session, assignment_ids: list[int]) -> dict[int, datetime]:
    """Of `assignment_ids`, those waiting to be validated, with since when."""
    if not assignment_ids:
        return {}
    return dict(
        session.exec(
            select(ValidationWork.assignment_id, ValidationWork.pending_since).where(
                col(ValidationWork.assignment_id).in_(assignment_ids)
            )
        ).all()
    )


def failing(session: Session) -> list[ValidationWork]:
    """The queued items whose last attempt failed, oldest first."""
    return list(
        session.exec(
            select(ValidationWork)
            .where(col(ValidationWork.attempts) > 0)
            .order_by(col(ValidationWork.pending_since))
        )
    )


@dataclass(frozen=True)
class Claim:
    assignment_id: int
    version: int
    attempts: int
    worker: str


def worker_name(index: int = 0) -> str:
    """Who holds a claim: the machine, the process and the worker within it."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}"[:100]


def claim(engine: Engine, settings: Settings, *, worker: str) -> Claim | None:
    """Take the next due item for `worker`, in a transaction of its own; None if none is due."""
    now = clock.now()
    stale = now - timedelta(seconds=settings.validation_claim_lease_s)
    with Session(engine) as session:
        due = (
            select(ValidationWork)
            .where(
                col(ValidationWork.next_attempt_at) <= now,
                or_(
                    col(ValidationWork.claimed_at).is_(None),
                    col(ValidationWork.claimed_at) < stale,
                ),
            )
            .order_by(col(ValidationWork.next_attempt_at), col(ValidationWork.assignment_id))
            .limit(1)
        )
        if engine.dialect.name == "postgresql":
            # Another process's claim in progress is skipped, not waited for.
            due = due.with_for_update(skip_locked=True)
        item = session.exec(due).first()
        if item is None:
            return None
        taken = Claim(item.assignment_id, item.version, item.attempts, worker)
        item.claimed_at = now
        item.claimed_by = worker
        session.add(item)
        session.commit()
    return taken


def validate_claimed(engine: Engine, settings: Settings, taken: Claim) -> bool:
    """Validate a claimed item in a transaction of its own and take it off the queue; on an
    error, put it back to be tried again after a back-off. True if it was validated."""
    try:
        with Session(engine) as session:
            validate_assignment(session, assignment_id=taken.assignment_id, settings=settings)
            done = session.execute(
                delete(ValidationWork).where(
                    col(ValidationWork.assignment_id) == taken.assignment_id,
                    col(ValidationWork.version) == taken.version,
                )
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                # A push came while it was validated: its data may not have been seen.
                _release(session, taken)
            else:
                # Validated with all its data: its readings may now be ready to bill.
                feed.append_ready(
                    session, assignment_id=taken.assignment_id, thresholds=settings.thresholds()
                )
            session.commit()
        return True
    except Exception as exc:  # any error: this item waits, the others go on
        logger.exception("validating assignment %s failed", taken.assignment_id)
        attempts = taken.attempts + 1
        wait = min(
            settings.validation_retry_s * 2 ** (attempts - 1), settings.validation_retry_max_s
        )
        with Session(engine) as session:
            _release(
                session,
                taken,
                attempts=attempts,
                last_error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX],
                next_attempt_at=clock.now() + timedelta(seconds=wait),
            )
            session.commit()
        return False


def _release(session: Session, taken: Claim, **values: object) -> None:
    session.execute(
        update(ValidationWork)
        .where(
            col(ValidationWork.assignment_id) == taken.assignment_id,
            col(ValidationWork.claimed_by) == taken.worker,
        )
        .values(claimed_at=None, claimed_by=None, **values)
    )


@dataclass
class Drained:
    validated: int = 0
    failed: int = 0


def drain(
    engine: Engine,
    settings: Settings,
    *,
    worker: str | None = None,
    stop: threading.Event | None = None,
) -> Drained:
    """Validate every item due now, one at a time, each in its own transaction, until none is
    due (or `stop` is set). An item that fails backs off (is not due again in this drain), so
    this ends."""
    worker = worker or worker_name()
    drained = Drained()
    while not (stop is not None and stop.is_set()):
        taken = claim(engine, settings, worker=worker)
        if taken is None:
            break
        if validate_claimed(engine, settings, taken):
            drained.validated += 1
        else:
            drained.failed += 1
    return drained


class Workers:
    """The server process's validation workers: threads that drain the queue when woken (after
    a push commits) and every `validation_poll_s` seconds (work of another process, retries)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._wake = threading.Event()
        self._last_push = -math.inf  # no push yet: what is queued is drained at once
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(i,), name=f"gridwalk-validation-{i}", daemon=True
            )
            for i in range(settings.validation_workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """A push committed: drain after the lull that follows it (Settings.validation_settle_s)."""
        self._last_push = time.monotonic()
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def _settle(self) -> None:
        """Wait until no push has come for `validation_settle_s`, or `validation_settle_max_s`
        have passed: validating shares this process's interpreter lock with the pushes."""
        settle, longest = self._settings.validation_settle_s, self._settings.validation_settle_max_s
        begun = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            wait = min(settle - (now - self._last_push), longest - (now - begun))
            if wait <= 0:
                return
            self._stop.wait(wait)

    def _run(self, index: int) -> None:
        worker = worker_name(index)
        while not self._stop.is_set():
            # Cleared before draining: a push committed during the drain wakes the next one.
            self._wake.clear()
            self._settle()
            try:
                drain(self._engine, self._settings, worker=worker, stop=self._stop)
            except Exception:  # the database out of reach, say: logged, tried again later
                logger.exception("draining the validation queue failed")
            self._wake.wait(self._settings.validation_poll_s)
