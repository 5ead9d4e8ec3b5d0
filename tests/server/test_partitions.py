"""Track points by month: partitions on PostgreSQL (made ahead, points moved out of the default,
the push's dedup across months) and retention on both databases (old months go whole, a month
holding an unsettled audit's track stays)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session

from server.audit import retention
from server.core import migrate, partitions
from server.core.config import Settings
from server.core.partitions import Month, add_months, month_start
from server.models import Assignment, Device, Flag, TrackPoint
from tests.factories import NOW, assign, make_route, make_user, reader_day, track_point
from tests.server.test_cli import gridwalk

PUSH = "/api/v1/sync/push"
THIS_MONTH = Month(month_start(NOW))
LAST_MONTH = Month(add_months(THIS_MONTH.first, -1))
ENGLISH = {"LANGUAGE": "en"}
# Partitions are PostgreSQL's: these tests run there only (not skipped on SQLite).
ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def no_months(engine: Engine) -> None:
    """PostgreSQL only (its tests are pinned to it: ON_POSTGRESQL): no month partition (they
    outlive the tests' TRUNCATE), every point in the default partition until a test makes its
    months."""
    assert engine.dialect.name == "postgresql", "partitions are PostgreSQL's: pin the test"
    with engine.begin() as conn:
        for month in partitions.months(conn):
            partitions.drop_month(conn, month)


def where_stored(engine: Engine) -> dict[datetime, str]:
    """Each point's time and the partition holding it."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT t, tableoid::regclass::text FROM track_points"))
        return {t: table.split(".")[-1] for t, table in rows}


def push_track(client: TestClient, headers: dict[str, str], times: list[datetime]) -> dict:
    response = client.post(
        PUSH, headers=headers, json={"track_points": [track_point(t) for t in times]}
    )
    assert response.status_code == 200, response.text
    track: dict = response.json()["track"]
    return track


@ON_POSTGRESQL
def test_a_point_lands_in_its_months_partition_and_the_command_moves_the_default_out(
    no_months: None,
    engine: Engine,
    client: TestClient,
    session: Session,
    settings: Settings,
    db_url: str,
) -> None:
    with engine.begin() as conn:
        assert partitions.ensure(conn, THIS_MONTH.first, 1).created == [THIS_MONTH]
    day = reader_day(session, settings, client)
    this = [THIS_MONTH.start + timedelta(minutes=i) for i in range(3)]
    earlier = [LAST_MONTH.end - timedelta(minutes=i + 1) for i in range(2)]
    assert push_track(client, day.headers, this + earlier)["accepted"] == 5

    stored = where_stored(engine)
    assert {stored[t] for t in this} == {THIS_MONTH.name}
    # No partition for last month: the default takes its points, refusing none.
    assert {stored[t] for t in earlier} == {partitions.DEFAULT}

    made = gridwalk(db_url, "partitions", "--ahead", "1", env=ENGLISH)
    assert made.exit_code == 0, made.output
    next_month = Month(add_months(THIS_MONTH.first, 1))
    assert (
        f"Track-point partitions: 2 made ({next_month.name}, {LAST_MONTH.name}), "
        "1 already there; 2 points moved out of the default partition." in made.output
    )
    stored = where_stored(engine)
    assert {stored[t] for t in earlier} == {LAST_MONTH.name}
    assert len(stored) == 5

    again = gridwalk(db_url, "partitions", "--ahead", "1", env={"LANGUAGE": "zh_CN"})
    assert again.exit_code == 0, again.output
    assert "新建 0 个（-），2 个已存在" in again.output, again.output
    with engine.connect() as conn:
        assert partitions.months(conn) == [LAST_MONTH, THIS_MONTH, next_month]


def test_a_push_again_across_a_month_boundary_stores_each_point_once(
    engine: Engine, client: TestClient, session: Session, settings: Settings
) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            partitions.ensure(conn, LAST_MONTH.first, 2)
    day = reader_day(session, settings, client)
    times = [THIS_MONTH.start + timedelta(minutes=m) for m in range(-3, 3)]
    assert push_track(client, day.headers, times) == {"accepted": 6, "duplicate": 0, "rejected": []}
    again = push_track(client, day.headers, [*times, THIS_MONTH.start + timedelta(minutes=9)])
    assert again == {"accepted": 1, "duplicate": 6, "rejected": []}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(TrackPoint)).scalar() == 7
    if engine.dialect.name == "postgresql":
        stored = where_stored(engine)
        assert {stored[t] for t in times[:3]} == {LAST_MONTH.name}
        assert {stored[t] for t in times[3:]} == {THIS_MONTH.name}


def months_ago(n: int) -> Month:
    return Month(add_months(THIS_MONTH.first, -n))


def point_counts(engine: Engine, months: list[Month]) -> list[int]:
    with engine.connect() as conn:
        return [
            conn.execute(
                select(func.count())
                .select_from(TrackPoint)
                .where(TrackPoint.t >= m.start, TrackPoint.t < m.end)  # type: ignore[arg-type, operator]
            ).scalar_one()
            for m in months
        ]


def test_retention_removes_whole_old_months_but_keeps_an_unsettled_audits_track(
    engine: Engine,
    session: Session,
    settings: Settings,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three months of points: 14 months ago (nothing open: goes), 13 months ago (a route read
    then whose flag nobody has reviewed: stays until it is), 2 months ago (within 12: stays).
    SQLite deletes a month in batches: 3 points a batch here, so a month takes several."""
    monkeypatch.setattr(retention, "BATCH", 3)
    old, disputed, recent = months_ago(14), months_ago(13), months_ago(2)
    reader = make_user(session, settings, "reader1", "reader", grid_code="G1")
    session.add(Device(id="device-0001"))
    make_route(session, "R-1", 2)
    window = disputed.first + timedelta(days=3)
    assignment = assign(session, "R-1", "reader1", cycle="old", start=window, end=window)
    closed = session.get(Assignment, assignment.id)
    assert closed is not None
    closed.status = "closed"
    flag = Flag(
        assignment_id=assignment.id, code="missed", severity="fail", message="missed", key="k"
    )
    session.add(flag)
    session.commit()
    rows = [
        {
            "device_id": "device-0001",
            "user_id": reader.id,
            "t": month.start + timedelta(days=3, minutes=i),
            "lat": 30.0,
            "lon": 120.0,
            "provider": "gps",
            "mock": False,
            "received_at": NOW,
        }
        for month in (old, disputed, recent)
        for i in range(7)
    ]
    with engine.begin() as conn:
        conn.execute(insert(TrackPoint.__table__), rows)  # type: ignore[attr-defined]
        if partitions.is_partitioned(conn):
            partitions.ensure_spanned(conn)
    months = [old, disputed, recent]

    dry = gridwalk(db_url, "retention", "--keep-months", "12", "--dry-run", env=ENGLISH)
    assert dry.exit_code == 0, dry.output
    assert f"{old.first:%Y-%m}: 7 points would be removed." in dry.output
    assert (
        f"{disputed.first:%Y-%m}: 7 points kept: the audit of assignment(s) {assignment.id} "
        "is not settled." in dry.output
    )
    assert point_counts(engine, months) == [7, 7, 7]

    done = gridwalk(db_url, "retention", "--keep-months", "12", env=ENGLISH)
    assert done.exit_code == 0, done.output
    cutoff = add_months(THIS_MONTH.first, -12)
    assert (
        f"Points from {cutoff.isoformat()} are kept; 1 month(s) removed, 1 kept for unsettled "
        "audits." in done.output
    )
    assert point_counts(engine, months) == [0, 7, 7]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = partitions.months(conn)
        assert [m for m in (old, disputed, recent) if m in held] == [disputed, recent]

    # Reviewed (the finding explained): the audit is settled, the month ages out like any.
    flag.review = "accepted"
    session.add(flag)
    session.commit()
    settled = gridwalk(db_url, "retention", "--keep-months", "12", env={"LANGUAGE": "zh_CN"})
    assert settled.exit_code == 0, settled.output
    assert f"{disputed.first:%Y-%m}：已删除 7 个轨迹点。" in settled.output, settled.output
    assert point_counts(engine, months) == [0, 0, 7]

    # Nothing left to remove: the command changes nothing the next time.
    last = gridwalk(db_url, "retention", "--keep-months", "12", env=ENGLISH)
    assert "0 month(s) removed, 0 kept" in last.output, last.output
    assert point_counts(engine, months) == [0, 0, 7]


def test_retention_refuses_a_keep_of_no_months(db_url: str) -> None:
    result: Result = gridwalk(db_url, "retention", "--keep-months", "0", env=ENGLISH)
    assert result.exit_code == 2
    assert "--keep-months" in result.output


@ON_POSTGRESQL
def test_the_migration_moves_the_points_into_their_months_and_back(
    no_months: None, engine: Engine, session: Session, settings: Settings, db_url: str
) -> None:
    reader = make_user(session, settings, "reader1", "reader", grid_code="G1")
    session.add(Device(id="device-0001"))
    session.commit()
    times = [LAST_MONTH.end - timedelta(minutes=2), THIS_MONTH.start + timedelta(minutes=2)]
    with engine.begin() as conn:
        conn.execute(
            insert(TrackPoint.__table__),  # type: ignore[attr-defined]
            [
                {
                    "device_id": "device-0001",
                    "user_id": reader.id,
                    "t": t,
                    "lat": 30.0,
                    "lon": 120.0,
                    "provider": "gps",
                    "mock": False,
                    "received_at": NOW,
                }
                for t in times
            ],
        )
        ids = dict(conn.execute(text("SELECT t, id FROM track_points")).all())
    before = ScriptDirectory.from_config(migrate.alembic_config(db_url)).get_revision("0014")
    assert before is not None
    migrate.downgrade(db_url, str(before.down_revision))
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT t, id FROM track_points")).all()) == ids
        kind = "SELECT relkind FROM pg_class WHERE oid = 'public.track_points'::regclass"
        assert conn.execute(text(kind)).scalar() == "r"
    migrate.upgrade(db_url)
    assert where_stored(engine) == {times[0]: LAST_MONTH.name, times[1]: THIS_MONTH.name}
    with engine.begin() as conn:
        assert dict(conn.execute(text("SELECT t, id FROM track_points")).all()) == ids
        # The id's sequence went on with the table: the next point gets the next id.
        conn.execute(
            insert(TrackPoint.__table__),  # type: ignore[attr-defined]
            {
                "device_id": "device-0001",
                "user_id": reader.id,
                "t": NOW,
                "lat": 30.0,
                "lon": 120.0,
                "provider": "gps",
                "mock": False,
                "received_at": NOW,
            },
        )
        latest = conn.execute(text("SELECT id FROM track_points WHERE t = :t"), {"t": NOW})
        assert latest.scalar() == max(ids.values()) + 1


@ON_POSTGRESQL
def test_retention_drops_an_old_empty_partition_and_leaves_the_months_ahead(
    no_months: None, engine: Engine, db_url: str
) -> None:
    with engine.begin() as conn:
        partitions.ensure(conn, months_ago(20).first, 1)
        partitions.ensure(conn, THIS_MONTH.first, 4)
    done = gridwalk(db_url, "retention", "--keep-months", "12", env=ENGLISH)
    assert done.exit_code == 0, done.output
    assert f"{months_ago(20).first:%Y-%m}: 0 points removed." in done.output
    with engine.connect() as conn:
        assert partitions.months(conn) == [Month(add_months(THIS_MONTH.first, n)) for n in range(4)]


@ON_POSTGRESQL
def test_retention_gives_up_on_a_month_rather_than_wait_behind_a_long_read(
    no_months: None, engine: Engine, db_url: str
) -> None:
    """DETACH needs the whole table for a moment; behind a read that does not end, it would
    hold every push back. It gives up (lock_timeout), says so, and drops nothing."""
    with engine.begin() as conn:
        partitions.ensure(conn, months_ago(20).first, 1)
    reader = engine.connect()
    try:
        reader.execute(text("BEGIN"))
        reader.execute(text("SELECT count(*) FROM track_points"))
        result = gridwalk(db_url, "retention", "--keep-months", "12", env=ENGLISH)
    finally:
        reader.rollback()
        reader.close()
    assert result.exit_code == 2
    assert "lock timeout" in result.output, result.output
    with engine.connect() as conn:
        assert months_ago(20) in partitions.months(conn)
