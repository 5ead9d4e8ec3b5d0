"""The track points' monthly partitions on PostgreSQL (migration 0014): which exist, making the
months ahead, dropping old ones. SQLite keeps one plain table and has none of this.

`track_points` is partitioned by RANGE (t), one partition a UTC month, plus a DEFAULT partition
so that a point is never refused for its date (a handheld with a wrong clock, a month nobody
made ahead). The partitions live in a schema of their own, so that the `public` schema holds
exactly the product's tables (what Alembic compares with the models) and nobody reads or
writes a partition by its name: every statement names `track_points`, and PostgreSQL checks
rights on it alone. Making and dropping partitions is DDL: run by the tables' owner (the
migrations' URL), never by the serving role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

SCHEMA = "track_points_months"
DEFAULT = "track_points_default"
_MONTH_NAME = re.compile(r"track_points_(\d{4})_(\d{2})")
# One lock for every change of the partitions: two servers starting at once, or a retention
# run and a `partitions` run, take turns instead of both creating (or dropping) a month.
_LOCK_KEY = 0x67726964_7061  # "gridpa"


def month_start(moment: date | datetime) -> date:
    """The first day of the UTC month of `moment`."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


def add_months(first: date, count: int) -> date:
    index = first.year * 12 + first.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Month:
    """A month's partition: the points with first <= t < the next month's first day."""

    first: date

    @property
    def name(self) -> str:
        return f"track_points_{self.first:%Y_%m}"

    @property
    def start(self) -> datetime:
        return midnight(self.first)

    @property
    def end(self) -> datetime:
        return midnight(add_months(self.first, 1))


def is_partitioned(conn: Connection) -> bool:
    """PostgreSQL with migration 0014 applied: track_points is a partitioned table."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('public.track_points')")
    ).scalar()
    return kind == "p"


def months(conn: Connection) -> list[Month]:
    """The month partitions that exist, oldest first (the DEFAULT partition is not one)."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'public.track_points'::regclass"
        )
    ).scalars()
    found = []
    for name in names:
        match = _MONTH_NAME.fullmatch(name)
        if match:
            found.append(Month(date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda m: m.first)


def lock(conn: Connection) -> None:
    """Wait for any other change of the partitions to end (held until the transaction ends)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def create_month(conn: Connection, month: Month) -> int:
    """Make `month`'s partition, first moving into it the points of that month the DEFAULT
    partition caught; the number moved. PostgreSQL cannot attach a range the DEFAULT partition
    holds rows of, so the new month is made as a plain table, filled, then attached."""
    table = f"{SCHEMA}.{month.name}"
    default = f"{SCHEMA}.{DEFAULT}"
    bounds = {"start": month.start, "end": month.end}
    # The names are made here from a date, never from input.
    conn.execute(text(f"CREATE TABLE {table} (LIKE public.track_points)"))
    moved = conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default} WHERE t >= :start AND t < :end "  # noqa: S608
            f"RETURNING *) INSERT INTO {table} SELECT * FROM moved"
        ),
        bounds,
    ).rowcount
    # ATTACH reads the new table and the DEFAULT partition to check the bound (the DEFAULT under
    # a lock that holds back a point arriving for it meanwhile: it is small, rows of months
    # nobody made); the parent takes only a lock that lets pushes go on.
    conn.execute(
        text(
            f"ALTER TABLE public.track_points ATTACH PARTITION {table} "
            f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"
        )
    )
    return moved


@dataclass
class Made:
    created: list[Month]
    moved: int
    existing: int


def ensure(conn: Connection, first: date, count: int) -> Made:
    """Make the partitions of `count` months from the month of `first` that do not exist yet
    (idempotent: a month that exists is left alone)."""
    lock(conn)
    have = {m.first for m in months(conn)}
    made = Made(created=[], moved=0, existing=0)
    for index in range(count):
        month = Month(add_months(month_start(first), index))
        if month.first in have:
            made.existing += 1
            continue
        made.moved += create_month(conn, month)
        made.created.append(month)
    return made


def ensure_spanned(conn: Connection, before: date | None = None) -> Made:
    """Make every month the DEFAULT partition holds points of (before `before`, if given: a
    point far in the future is a handheld's wrong clock, not a month to make); they move in."""
    lock(conn)
    default = f"{SCHEMA}.{DEFAULT}"
    span = conn.execute(
        text(f"SELECT min(t), max(t) FROM {default} WHERE t < :before"),  # noqa: S608
        {"before": midnight(before) if before else datetime.max.replace(tzinfo=UTC)},
    ).one()
    made = Made(created=[], moved=0, existing=0)
    if span[0] is None:
        return made
    month, last = month_start(span[0]), month_start(span[1])
    while month <= last:
        # Only the months with points: a wrong clock's 1970 makes no fifty years of tables.
        if conn.execute(
            text(f"SELECT 1 FROM {default} WHERE t >= :start AND t < :end LIMIT 1"),  # noqa: S608
            {"start": Month(month).start, "end": Month(month).end},
        ).first():
            more = ensure(conn, month, 1)
            made.created += more.created
            made.moved += more.moved
        month = add_months(month, 1)
    return made


def ensure_ahead(conn: Connection, now: datetime, ahead: int) -> Made:
    """This month's partition and the next `ahead` months'; and a partition for every earlier
    month whose points the DEFAULT partition caught (moved into it)."""
    this_month = month_start(now)
    made = ensure(conn, this_month, ahead + 1)
    earlier = ensure_spanned(conn, before=this_month)
    return Made(made.created + earlier.created, made.moved + earlier.moved, made.existing)


def drop_month(conn: Connection, month: Month) -> None:
    """Detach and drop `month`'s partition: its points are gone, at the cost of a catalog
    change (no row is deleted one by one, no table bloats).

    DETACH locks the whole table for a moment (CONCURRENTLY is not allowed beside a DEFAULT
    partition), and waits for the reads already on it; pushes queue behind that wait. So it
    gives up after a few seconds (the command says the database refused) rather than hold
    pushes back behind a long read: run it again later."""
    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
    conn.execute(text(f"ALTER TABLE public.track_points DETACH PARTITION {SCHEMA}.{month.name}"))
    conn.execute(text(f"DROP TABLE {SCHEMA}.{month.name}"))
