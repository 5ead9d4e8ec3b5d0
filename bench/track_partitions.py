"""What partitioning the track points by month costs a push and saves retention (PostgreSQL).

Two tables with the same columns, keys and indexes in one database, one run: `track_points`
(partitioned by month, migration 0014) and a plain copy. Figures:
- storing points as a push does when its span holds points already (COPY into a staging
  table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING: server/sync/bulk.py; a push of new
  points copies them straight in), in batches of 2,000, into each;
- removing a month of points: detach and drop its partition, against DELETE of the same rows
  from the plain table.

Run: .venv/bin/python -m bench.track_partitions --database-url URL [--points N]
(N points a round, 3 rounds;
URL: a PostgreSQL database of the bench's own, emptied first.)
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, text
from sqlmodel import Session

from bench.database import fresh
from common import clock
from server.core import partitions
from server.core.db import make_engine
from server.core.partitions import Month
from server.models import TrackPoint
from server.sync.bulk import TRACK_COLUMNS, copy_then_insert

BATCH = 2_000
ROUNDS = 3
MONTH = Month(datetime(2026, 11, 1, tzinfo=UTC).date())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    url: str = args.database_url
    if not url.startswith("postgresql"):
        parser.error("partitions are PostgreSQL's: give a PostgreSQL URL")
    fresh(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, full_name, password_hash, role, active, created_at)"
                " VALUES ('r', '', 'x', 'reader', true, now())"
            )
        )
        conn.execute(
            text("INSERT INTO devices (id, first_seen_at, last_seen_at) VALUES ('d', now(), now())")
        )
        partitions.ensure(conn, MONTH.first, 1)
        conn.execute(text("CREATE TABLE track_points_plain (LIKE track_points INCLUDING ALL)"))
        # LIKE copies no foreign key: the plain table checks the same two as the partitioned.
        conn.execute(
            text(
                "ALTER TABLE track_points_plain "
                "ADD FOREIGN KEY (device_id) REFERENCES devices (id), "
                "ADD FOREIGN KEY (user_id) REFERENCES users (id)"
            )
        )
        # The same keys and indexes: the plain table must refuse a point the partitioned one does.
        indexes = conn.execute(
            text("SELECT count(*) FROM pg_indexes WHERE tablename = 'track_points_plain'")
        ).scalar()
        assert indexes == 4, indexes
    received = clock.now()
    # A point every second from the month's start: every round within the one month. The two
    # tables take turns, round after round, so a busy spell of the machine hits both.
    timings: dict[str, list[float]] = {"track_points_plain": [], "track_points": []}
    for round_ in range(ROUNDS):
        rows = [
            (
                "d",
                1,
                MONTH.start + timedelta(seconds=round_ * args.points + i),
                30.0,
                120.0,
                5.0,
                None,
                "gps",
                False,
                received,
            )
            for i in range(args.points)
        ]
        for name in timings:
            # The push's own path, into either table (the plain one has the same columns).
            table = TrackPoint.__table__.to_metadata(MetaData(), name=name)  # type: ignore[attr-defined]
            started = time.perf_counter()
            for k in range(0, len(rows), BATCH):
                with Session(engine) as session:
                    batch = rows[k : k + BATCH]
                    assert len(
                        copy_then_insert(session, table, TRACK_COLUMNS, batch, "t")
                    ) == len(batch)
                    session.commit()
            timings[name].append(time.perf_counter() - started)
    plain, parted = min(timings["track_points_plain"]), min(timings["track_points"])
    print(
        f"stored {args.points:,} points in batches of {BATCH:,}, COPY + INSERT ON CONFLICT "
        f"(best of {ROUNDS} rounds):"
    )
    print(f"  partitioned  {parted:6.2f} s  {args.points / parted:9,.0f}/s")
    print(f"  plain table  {plain:6.2f} s  {args.points / plain:9,.0f}/s")
    print(f"  partitioned / plain time: {parted / plain:.2f}")

    with engine.connect() as conn:
        size = conn.execute(
            text("SELECT pg_total_relation_size(:name)"),
            {"name": f"{partitions.SCHEMA}.{MONTH.name}"},
        ).scalar_one()
        heap = conn.execute(
            text("SELECT pg_relation_size(:name)"), {"name": f"{partitions.SCHEMA}.{MONTH.name}"}
        ).scalar_one()
    held = ROUNDS * args.points
    print(
        f"on disk: {size / held:.0f} B a point with its 4 indexes ({heap / held:.0f} B the row "
        f"alone): {size / 2**20:.0f} MiB for {held:,} points"
    )

    started = time.perf_counter()
    with engine.begin() as conn:
        gone = conn.execute(
            text("DELETE FROM track_points_plain WHERE t >= :start AND t < :end"),
            {"start": MONTH.start, "end": MONTH.end},
        ).rowcount
    deleted = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        partitions.drop_month(conn, MONTH)
    dropped = time.perf_counter() - started
    print(f"removed a month ({gone:,} points):")
    print(f"  drop partition {dropped:6.3f} s")
    print(
        f"  DELETE rows    {deleted:6.3f} s  ({deleted / dropped:,.0f}x the drop; leaves dead rows)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
