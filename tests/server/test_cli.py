"""The `gridwalk` command, run in-process against the test database, and the demo it loads."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from mobile.core.location import load_gpx
from server.catalog import accounts
from server.catalog.accounts import GridView
from server.cli import app
from server.core.config import Settings
from server.core.security import verify_password
from server.demo.utility import LOCAL, USERS, demo_csv
from server.jobs import outages
from server.models import (
    Account,
    Assignment,
    Cycle,
    Device,
    Flag,
    Grid,
    Job,
    Meter,
    Reading,
    Route,
    User,
)
from tests.factories import (
    CYCLE,
    NOW,
    TODAY,
    WINDOW_END,
    WINDOW_START,
    assign,
    imported,
    make_route,
    make_user,
)
from tests.server.test_imports import csv_text, row

# Cheap argon2, as the settings fixture has: the KDF's cost is not what these tests are about.
CHEAP_KDF = {"GRIDWALK_PASSWORD_TIME_COST": "1", "GRIDWALK_PASSWORD_MEMORY_KIB": "1024"}


def gridwalk(
    database_url: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    env = {
        "DATABASE_URL": database_url,
        "GRIDWALK_ENVIRONMENT": "development",
        **CHEAP_KDF,
        **(env or {}),
    }
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def count(session: Session, model: type) -> int:
    n = session.exec(select(func.count()).select_from(model)).one()
    session.commit()  # end the read: the command's writes are seen by the next one
    return n


def test_create_user_makes_a_user_who_can_log_in(
    db_url: str, session: Session, settings: Settings
) -> None:
    assert gridwalk(db_url, "create-grid", "G7", "--name", "滨江网格").exit_code == 0
    result = gridwalk(
        db_url,
        "create-user",
        "sup1",
        "--role",
        "supervisor",
        "--grid",
        "G7",
        "--password",
        "long-enough-pw",
        "--full-name",
        "Zhou",
    )

    assert result.exit_code == 0, result.output
    assert "sup1" in result.output
    user = session.exec(select(User).where(User.username == "sup1")).one()
    grid = session.exec(select(Grid).where(Grid.code == "G7")).one()
    assert (user.role, user.full_name, user.grid_id, grid.leader_id) == (
        "supervisor",
        "Zhou",
        grid.id,
        user.id,
    )
    assert verify_password(settings, "long-enough-pw", user.password_hash)


def test_a_refused_command_prints_one_red_line_and_exits_2(db_url: str) -> None:
    assert (
        gridwalk(
            db_url, "create-user", "u1", "--role", "reader", "--password", "long-enough-pw"
        ).exit_code
        == 0
    )

    again = gridwalk(
        db_url, "create-user", "u1", "--role", "reader", "--password", "long-enough-pw"
    )
    bad_role = gridwalk(
        db_url, "create-user", "u2", "--role", "wizard", "--password", "long-enough-pw"
    )

    assert again.exit_code == bad_role.exit_code == 2
    assert again.output.strip() == "error: user 'u1' already exists"
    assert "role 'wizard' is not one of" in bad_role.output
    assert "Traceback" not in again.output + bad_role.output


def test_commands_refuse_a_database_without_the_schema(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    empty_file = tmp_path / "empty.db"
    empty_file.touch()

    no_file = gridwalk(missing, "revoke-device", "device-0001")
    no_schema = gridwalk(f"sqlite:///{empty_file}", "revoke-device", "device-0001")

    assert no_file.exit_code == no_schema.exit_code == 2
    assert "run `gridwalk db upgrade` first" in no_file.output
    assert "has no Gridwalk schema" in no_schema.output
    assert not (tmp_path / "missing.db").exists()


def test_db_upgrade_creates_the_schema_and_downgrade_asks_before_dropping_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    assert gridwalk(url, "db", "upgrade").exit_code == 0
    assert (
        gridwalk(
            url, "create-user", "a1", "--role", "admin", "--password", "long-enough-pw"
        ).exit_code
        == 0
    )
    declined = gridwalk(url, "db", "downgrade", stdin="n\n")
    assert declined.exit_code == 1
    assert (
        gridwalk(
            url, "create-user", "a2", "--role", "admin", "--password", "long-enough-pw"
        ).exit_code
        == 0
    )
    assert gridwalk(url, "db", "downgrade", "--yes").exit_code == 0
    gone = gridwalk(url, "create-user", "a3", "--role", "admin", "--password", "long-enough-pw")
    assert gone.exit_code == 2
    assert "has no Gridwalk schema" in gone.output


def test_import_meters_loads_a_good_file(db_url: str, session: Session, tmp_path: Path) -> None:
    path = tmp_path / "meters.csv"
    # A billing export saved by a spreadsheet: UTF-8 with a byte-order mark, CRLF lines.
    text = csv_text([row(i, customer_name=f"王{i}") for i in range(0, 10, 2)])
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))

    result = gridwalk(db_url, "import-meters", str(path))

    assert result.exit_code == 0, result.output
    assert "meters created" in result.output
    assert count(session, Meter) == 5
    assert (
        session.exec(select(Account).where(Account.account_no == "A0000")).one().customer_name
        == "王0"
    )


@pytest.mark.parametrize(
    ("language", "read", "written"),
    [
        ("en", "Reading meters.csv", "Written to the database"),
        ("zh_CN", "读取 meters.csv", "已写入数据库"),
    ],
)
def test_import_meters_shows_the_file_read_then_the_database_written_in_the_users_language(
    db_url: str, tmp_path: Path, language: str, read: str, written: str
) -> None:
    path = tmp_path / "meters.csv"
    path.write_text(csv_text([row(i) for i in range(4)]), encoding="utf-8")

    result = gridwalk(db_url, "import-meters", str(path), env={"LANGUAGE": language})

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [n for n, line in enumerate(lines) if read in line] == [0]
    assert [n for n, line in enumerate(lines) if written in line] == [1]
    assert "4/4" in lines[1]


def test_import_meters_prints_every_bad_line_and_exits_1(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "meters.csv"
    rows = [row(0, lat="91"), row(2), row(4, sequence="x"), row(6, meter_no="M0000")]
    path.write_text(csv_text(rows), encoding="utf-8")

    result = gridwalk(db_url, "import-meters", str(path))

    assert result.exit_code == 1
    cells = [line.split("│")[1:3] for line in result.output.splitlines() if "│" in line]
    # A long error wraps onto lines of its own with the first two cells blank.
    assert [(n.strip(), c.strip()) for n, c in cells if n.strip()] == [
        ("2", "lat"),
        ("4", "sequence"),
        ("5", "meter_no"),
    ]
    assert "nothing was imported" in result.output
    assert count(session, Meter) == count(session, Account) == count(session, Route) == 0


def test_import_meters_refuses_a_file_that_is_not_utf8_and_writes_nothing(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "meters.csv"
    path.write_bytes(csv_text([row(0), row(2)]).encode("utf-8") + b"A9,\xff\xfe,x\n")

    result = gridwalk(db_url, "import-meters", str(path))

    assert result.exit_code == 2
    assert "is not UTF-8 text" in result.output
    assert count(session, Meter) == count(session, Account) == 0


def test_assign_gives_a_route_to_a_reader_and_refuses_an_unknown_route(
    db_url: str, session: Session, settings: Settings
) -> None:
    accounts.create_user(session, settings, username="r1", password="long-enough-pw", role="reader")
    session.commit()
    imported(session, csv_text([row(0)]))
    window = [
        *("--cycle", CYCLE),
        *("--window-start", WINDOW_START.isoformat(), "--window-end", WINDOW_END.isoformat()),
    ]

    result = gridwalk(db_url, "assign", "--route", "R-A", "--reader", "r1", *window)
    unknown = gridwalk(db_url, "assign", "--route", "R-Z", "--reader", "r1", *window)

    assert result.exit_code == 0, result.output
    assignment = session.exec(select(Assignment)).one()
    cycle = session.exec(select(Cycle)).one()
    assert (cycle.code, assignment.window_start, assignment.window_end) == (
        CYCLE,
        WINDOW_START,
        WINDOW_END,
    )
    assert unknown.exit_code == 2
    assert "no route 'R-Z'" in unknown.output


def test_revoke_device_revokes_a_device_that_logged_in(
    db_url: str, session: Session, settings: Settings
) -> None:
    accounts.create_user(session, settings, username="r1", password="long-enough-pw", role="reader")
    session.commit()
    accounts.login(
        session,
        settings,
        username="r1",
        password="long-enough-pw",
        device_id="test-device-01",
        address="127.0.0.1",
    )
    session.commit()

    result = gridwalk(db_url, "revoke-device", "test-device-01")

    assert result.exit_code == 0, result.output
    session.expire_all()
    device = session.get(Device, "test-device-01")
    assert device is not None
    assert device.revoked_at is not None


# --- demo -------------------------------------------------------------------------------------


def test_demo_loads_once_and_prints_the_credentials_both_times(
    db_url: str, session: Session
) -> None:
    first = gridwalk(db_url, "demo")
    second = gridwalk(db_url, "demo")

    for result in (first, second):
        assert result.exit_code == 0, result.output
        for user in USERS:
            assert user.password in result.output
        assert "gridwalk serve" in result.output
    assert "already loaded" in second.output
    assert count(session, User) == len(USERS)
    assert count(session, Meter) == 81
    routes = {r.code: r for r in session.exec(select(Route))}
    grid = session.exec(select(Grid)).one()
    assert set(routes) == {"R-101", "R-102"}
    assert {r.grid_id for r in routes.values()} == {grid.id}
    assert grid.name == "Riverside grid"
    leader = session.get(User, grid.leader_id)
    assert leader is not None
    assert leader.username == "supervisor"
    today = TODAY  # the demo dates itself from the clock, frozen at NOW
    given = {
        (route.code, reader.username, cycle.code, a.window_start, a.window_end)
        for a, route, reader, cycle in session.exec(
            select(Assignment, Route, User, Cycle).where(
                Assignment.route_id == Route.id,
                Assignment.reader_id == User.id,
                Assignment.cycle_id == Cycle.id,
            )
        )
    }
    window = (today - timedelta(days=2), today + timedelta(days=5))
    assert given == {
        ("R-101", "reader1", f"{today:%Y-%m}", *window),
        ("R-102", "reader2", f"{today:%Y-%m}", *window),
    }


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * 111_320
    dx = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


@pytest.mark.parametrize("route", ["R-101", "R-102"])
def test_demo_route_is_a_street_walk_with_meters_near_roll_over(route: str) -> None:
    rows = [r for r in csv.DictReader(io.StringIO(demo_csv(TODAY))) if r["route_code"] == route]
    points = [(float(r["lat"]), float(r["lon"])) for r in rows]
    steps = [_metres(a, b) for a, b in itertools.pairwise(points)]

    assert 35 <= len(rows) <= 45
    assert [int(r["sequence"]) for r in rows] == list(range(1, len(rows) + 1))
    # Next door is a short walk, except the shop's two meters at one door.
    assert sum(1 for s in steps if 20 <= s <= 110) >= len(steps) - 1
    assert max(steps) <= 110
    assert all(_metres(points[0], p) < 2_000 for p in points)
    assert any(int(r["digits"]) == 4 and int(r["last_reading"]) >= 9_980 for r in rows)
    assert any(int(r["multiplier"]) > 1 for r in rows)
    read_at = [datetime.fromisoformat(r["last_read_at"]) for r in rows]
    assert read_at == sorted(read_at)
    # Last cycle's walk: a month before today, from 09:00 local time.
    assert read_at[0].astimezone(LOCAL).date() == TODAY - timedelta(days=30)


def test_the_demo_has_an_honest_day_a_day_typed_at_home_and_outages(
    db_url: str, session: Session, settings: Settings
) -> None:
    """A newcomer sees a clean route and a flagged one: R-101 honest, R-102 estimated."""
    result = gridwalk(db_url, "demo")
    assert result.exit_code == 0, result.output
    by_route = {
        code: Counter(
            f.code
            for f in session.exec(
                select(Flag).join(Assignment).join(Route).where(Route.code == code)
            )
        )
        for code in ("R-101", "R-102")
    }
    readings = Counter(
        session.exec(select(Route.code).select_from(Reading).join(Assignment).join(Route))
    )
    assert by_route["R-101"] == Counter()
    assert readings["R-101"] == 37  # 41 meters, the last four not reached yet
    assert by_route["R-102"]["not_on_track"] == readings["R-102"] == 40
    assert by_route["R-102"]["unchanged"] > 0
    # Every fix was typed onto its meter's coordinates, reading after reading.
    assert by_route["R-102"]["fix_on_meter"] == readings["R-102"]
    board = outages.outages(
        session, settings, view=GridView(every_grid=True), now=NOW, grid="GRID-01"
    )
    # Newest first: the planned one entered last; a fault nobody has given a time for, estimated
    # from the past repairs; the one crew1 is on, by their estimate; one restored an hour ago.
    assert [(r["kind"], r["status"], r["upcoming"], r["etr_source"]) for r in board] == [
        ("planned", "created", True, "plan"),
        ("fault", "assigned", False, "history"),
        ("fault", "started", False, "crew"),
        ("fault", "restored", False, None),
    ]
    assert board[1]["etr_history"]["jobs"] == 7  # six past repairs and the restored one
    assert board[2]["crew_members"][0]["last_position"] is not None
    assert {r["customers_affected"] > 0 for r in board} == {True}
    planned = session.exec(select(Job).where(Job.kind == "planned")).one()
    _, notified = outages.affected_customers(
        session, view=GridView(every_grid=True), job_id=planned.id
    )
    assert notified
    assert {a.phone is not None for a in notified} == {True}


def test_walk_gpx_writes_a_walk_along_the_route_to_replay(db_url: str, tmp_path: Path) -> None:
    assert gridwalk(db_url, "demo").exit_code == 0
    out = tmp_path / "walk.gpx"
    result = gridwalk(db_url, "walk-gpx", "R-101", str(out))
    assert result.exit_code == 0, result.output
    points = load_gpx(out)
    assert len(points) > 100
    assert points[-1].offset_s > 30 * 60  # 41 meters take the best part of an hour
    assert gridwalk(db_url, "walk-gpx", "R-999", str(out)).exit_code == 2


def test_close_due_closes_what_has_ended(db_url: str, session: Session, settings: Settings) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    make_route(session, "R-OLD", 2)
    ended = TODAY - timedelta(days=30)
    assign(session, "R-OLD", "reader1", "C-old", start=ended - timedelta(days=4), end=ended)
    result = gridwalk(db_url, "close-due")
    assert result.exit_code == 0, result.output
    assert "Closed 1 assignment" in result.output
    assert session.exec(select(Assignment.status)).one() == "closed"


def test_demo_can_be_loaded_as_of_another_day(db_url: str, session: Session) -> None:
    day = TODAY - timedelta(days=40)
    result = gridwalk(db_url, "demo", "--today", day.isoformat())
    assert result.exit_code == 0, result.output
    windows = {(a.window_start, a.window_end) for a in session.exec(select(Assignment))}
    assert windows == {(day - timedelta(days=2), day + timedelta(days=5))}
    first = session.exec(select(func.min(Reading.read_at))).one()
    assert first is not None
    assert first.astimezone(LOCAL).date() == day - timedelta(days=1)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            [
                "create-user",
                "u1",
                "--role",
                "reader",
                "--password",
                "long-enough-pw",
                "--grid",
                "NO-SUCH-GRID",
            ],
            "no grid 'NO-SUCH-GRID'",
        ),
        (
            [
                "assign",
                "--route",
                "R-A",
                "--reader",
                "r1",
                "--cycle",
                "2026-13",
                "--window-start",
                "2026-02-01",
                "--window-end",
                "2026-02-05",
            ],
            "names month 13",
        ),
        (
            [
                "assign",
                "--route",
                "R-A",
                "--reader",
                "r1",
                "--cycle",
                "C1",
                "--window-start",
                "2026-02-30",
                "--window-end",
                "2026-03-05",
            ],
            "'2026-02-30' is not a day of the calendar",
        ),
        (
            [
                "assign",
                "--route",
                "R-A",
                "--reader",
                "r1",
                "--cycle",
                "C1",
                "--window-start",
                "2026/02/03",
                "--window-end",
                "2026-03-05",
            ],
            "'2026/02/03' is not a day written YYYY-MM-DD",
        ),
        (
            [
                "assign",
                "--route",
                "R-A",
                "--reader",
                "r1",
                "--cycle",
                "C1",
                "--window-start",
                "9999-01-01",
                "--window-end",
                "9999-01-05",
            ],
            "outside 2000-2099",
        ),
        (
            [
                "assign",
                "--route",
                "R-A",
                "--reader",
                "r1",
                "--cycle",
                "C1",
                "--window-start",
                "2026-01-01",
                "--window-end",
                "2026-12-31",
            ],
            "at most 92",
        ),
        (["walk-gpx", "R-A", "/no/such/dir/x.gpx"], "the folder /no/such/dir does not exist"),
        (["db", "upgrade", "not-a-revision"], "not-a-revision"),
        (["serve", "--port", "99999"], "--port"),
        (["demo", "--today", "2026-13-01"], "'2026-13-01' is not a day of the calendar"),
        (["assign"], "Missing option '--route'"),
        (["no-such-command"], "No such command"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v[:2]),
)
def test_a_bad_argument_gets_one_line_a_nonzero_exit_and_writes_nothing(
    db_url: str, session: Session, settings: Settings, args: list[str], says: str
) -> None:
    accounts.create_user(session, settings, username="r1", password="long-enough-pw", role="reader")
    session.commit()
    imported(session, csv_text([row(0)]))
    session.commit()
    before = {model: count(session, model) for model in (User, Grid, Assignment, Reading)}

    result = gridwalk(db_url, *args)

    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert says in lines[0]
    assert {model: count(session, model) for model in before} == before
