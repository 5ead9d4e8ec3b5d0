"""A small demo utility: one grid, two reading routes of a town's streets, a user of every role.

The meters go in through the CSV import, so the demo exercises the path a real utility takes.
Everything is drawn from a seeded generator: two loads on the same day load the same data.
"""

from __future__ import annotations

import csv
import io
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import NamedTuple

from sqlmodel import Session, col, select

from common import clock
from common.geo import offset
from server.catalog.accounts import create_user, get_or_create_grid
from server.catalog.assignments import assign_route
from server.catalog.imports import import_meters_csv
from server.catalog.meter_csv import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from server.core.config import Settings
from server.core.errors import Conflict, NotFound
from server.demo.days import home_day, honest_day
from server.jobs.dispatch import JobDraft, create_job
from server.models import Account, Assignment, Device, Meter, Route, User
from server.sync.push import Pusher, push
from server.validation import queue as validation_queue

GRID_CODE = "GRID-01"
GRID_NAME = "Riverside grid"
SEED = 20261101
CITY = "杭州市"
# Readings are taken in the town's local time (China Standard Time, no daylight saving).
LOCAL = timezone(timedelta(hours=8), "CST")


class DemoUser(NamedTuple):
    username: str
    password: str
    role: str


@dataclass(frozen=True)
class DemoCredentials:
    """The demo's users and their passwords; `created` is False when they were already there."""

    users: tuple[DemoUser, ...]
    created: bool


# Published in the README and printed by `gridwalk demo`: these are not secrets.
USERS = (
    DemoUser("admin", "demo-admin-pass", "admin"),
    DemoUser("supervisor", "demo-supervisor-pass", "supervisor"),
    DemoUser("reader1", "demo-reader1-pass", "reader"),
    DemoUser("reader2", "demo-reader2-pass", "reader"),
    DemoUser("crew1", "demo-crew1-pass", "crew"),
    DemoUser("crew2", "demo-crew2-pass", "crew"),
    DemoUser("agent", "demo-agent-pass", "agent"),
)
FULL_NAMES = {
    "admin": "系统管理员",
    "supervisor": "周网格长",
    "reader1": "李明",
    "reader2": "王芳",
    "crew1": "陈强",
    "crew2": "刘军",
    "agent": "赵敏 (95598)",
}
# The crews' numbers, for the agent who needs to reach them (made up: 555 is no real prefix).
PHONES = {"crew1": "13955500001", "crew2": "13955500002"}
# How long past urgent faults took from report to restoration, in minutes: the history the
# board estimates an unattended fault's restoration from.
PAST_REPAIRS_MIN = (75, 95, 110, 130, 160, 240)


class _Street(NamedTuple):
    name: str
    bearing_deg: float  # the direction the reader walks, clockwise from north
    houses: int


class _RoutePlan(NamedTuple):
    code: str
    reader: str
    start: tuple[float, float]
    streets: tuple[_Street, ...]
    # Houses by position on the walk: (digits, last reading) of meters close to rolling over,
    # and the current-transformer multiplier of shops' meters.
    rollover: dict[int, tuple[int, int]]
    ct: dict[int, int]
    second_meter_at: int | None = None


ROUTES = (
    _RoutePlan(
        "R-101",
        "reader1",
        (30.2712, 120.1478),
        (_Street("青春路", 90, 14), _Street("中河北路", 0, 13), _Street("凤起路", 270, 13)),
        rollover={7: (4, 9990), 23: (5, 99950)},
        ct={5: 30, 28: 40},
        second_meter_at=5,
    ),
    _RoutePlan(
        "R-102",
        "reader2",
        (30.2668, 120.1585),
        (_Street("庆春路", 90, 14), _Street("建国北路", 180, 13), _Street("解放路", 270, 13)),
        rollover={12: (4, 9985), 30: (5, 99920)},
        ct={3: 40, 19: 30},
    ),
)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
# fmt: off
_GIVEN = ("建国", "秀英", "伟", "芳", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
          "娟", "涛", "明", "超", "秀兰", "霞")
# fmt: on
_SHOPS = ("联华超市", "仁和药房", "老杭州面馆", "便民五金店")


def cycle_code(today: date) -> str:
    """The demo's cycle for a day: its month, such as 2026-11."""
    return f"{today:%Y-%m}"


def demo_csv(today: date) -> str:
    """The demo's meters as a billing-system CSV export, last read a month before `today`."""
    rng = random.Random(SEED)  # noqa: S311 - made-up customers, not secrets
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    last_walk = today - timedelta(days=30)
    shops = iter(_SHOPS)
    for plan in ROUTES:
        route_no = plan.code.removeprefix("R-")
        read_at = datetime.combine(last_walk, time(9, 0), LOCAL)
        seq = 0
        for house, (street, number, lat, lon) in enumerate(_walk(plan, rng), start=1):
            seq += 1
            read_at += timedelta(minutes=rng.uniform(2, 6))
            digits, last_reading = plan.rollover.get(house, (6, rng.randint(1_000, 60_000)))
            multiplier = plan.ct.get(house, 1)
            if multiplier > 1:
                name = next(shops)
                # Shops on current transformers: the register moves by kWh / multiplier.
                per_cycle = rng.randint(3_000, 9_000)
                last_reading = rng.randint(2_000, 20_000)
            else:
                name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
                per_cycle = rng.randint(90, 350)
            if house == 17:
                per_cycle = 10  # an empty flat: any real consumption is worth a look
            account_no = f"33{route_no}{house:06d}"
            address = f"{CITY}{street}{number}号"
            row = [
                account_no,
                name,
                address,
                f"ZJ{route_no}{seq:05d}",
                f"{lat:.6f}",
                f"{lon:.6f}",
                plan.code,
                str(seq),
                str(digits),
                str(multiplier),
                str(last_reading),
                read_at.astimezone(UTC).isoformat(timespec="seconds"),
                str(round(per_cycle * 0.5)),
                str(round(per_cycle * 1.8)),
                GRID_CODE,
                "",  # position_uncertainty_m: the demo's map is the street it is walked on
                f"1385{route_no}{house:04d}",  # made up
            ]
            writer.writerow(row)
            if house == plan.second_meter_at:
                # The shop's flat upstairs has an ordinary meter in the same box: one account,
                # two meters at one door.
                seq += 1
                read_at += timedelta(minutes=1)
                per_cycle = rng.randint(90, 350)
                writer.writerow(
                    [
                        account_no,
                        name,
                        address,
                        f"ZJ{route_no}{seq:05d}",
                        f"{lat + 0.00002:.6f}",
                        f"{lon:.6f}",
                        plan.code,
                        str(seq),
                        "6",
                        "1",
                        str(rng.randint(1_000, 60_000)),
                        read_at.astimezone(UTC).isoformat(timespec="seconds"),
                        str(round(per_cycle * 0.5)),
                        str(round(per_cycle * 1.8)),
                        GRID_CODE,
                        "",
                        f"1385{route_no}{house:04d}",
                    ]
                )
    return out.getvalue()


def _walk(plan: _RoutePlan, rng: random.Random) -> list[tuple[str, int, float, float]]:
    """Houses along the route's streets in walking order: street, house number, lat, lon."""
    lat, lon = plan.start
    houses = []
    for street in plan.streets:
        bearing = math.radians(street.bearing_deg)
        number = rng.randint(1, 30) * 2
        for i in range(street.houses):
            step = rng.uniform(30, 80)
            lat, lon = _move(lat, lon, bearing, step)
            # Houses alternate sides of the street, the meter box a few metres off the kerb.
            side = 1 if i % 2 else -1
            h_lat, h_lon = _move(lat, lon, bearing + side * math.pi / 2, rng.uniform(6, 12))
            houses.append((street.name, number + (i % 2), h_lat, h_lon))
            number += 2 * (i % 2)
    return houses


def _move(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    return offset(lat, lon, metres * math.cos(bearing), metres * math.sin(bearing))


def load_demo(session: Session, settings: Settings) -> DemoCredentials:
    """Load the demo utility, or find it already loaded; either way return its credentials.

    Its days are dated from the clock's today (common.clock): yesterday's walks, a window open
    around today, an outage being repaired now."""
    if settings.environment == "production":
        raise Conflict(
            "refusing to load the demo into a production database: its passwords are published",
            code="demo_in_production",
        )
    names = [user.username for user in USERS]
    found = set(session.exec(select(User.username).where(col(User.username).in_(names))).all())
    if found == set(names):
        return DemoCredentials(users=USERS, created=False)
    if found:
        raise Conflict(
            f"users {', '.join(sorted(found))} already exist but the demo is not "
            "loaded: load the demo into an empty database",
            code="demo_conflict",
        )
    today = clock.now().astimezone(LOCAL).date()

    grid = get_or_create_grid(session, code=GRID_CODE)
    grid.name = GRID_NAME
    session.add(grid)
    admin_id: int | None = None
    for user in USERS:
        created = create_user(
            session,
            settings,
            username=user.username,
            password=user.password,
            role=user.role,
            full_name=FULL_NAMES[user.username],
            phone=PHONES.get(user.username),
            # The agent's grid is the one their board opens on.
            grid_code=None if user.role == "admin" else GRID_CODE,
            actor_id=admin_id,
        )
        admin_id = admin_id or created.id
    # The import commits the users with the meters.
    import_meters_csv(session, demo_csv(today), actor_id=admin_id)
    for plan in ROUTES:
        assign_route(
            session,
            route_code=plan.code,
            reader=plan.reader,
            cycle=cycle_code(today),
            window_start=today - timedelta(days=2),
            window_end=today + timedelta(days=5),
            actor_id=admin_id,
        )
    _push_demo_days(session, settings, yesterday=today - timedelta(days=1))
    _demo_outages(session, settings)
    return DemoCredentials(users=USERS, created=True)


def route_meters(session: Session, *, route_code: str) -> list[Meter]:
    """A route's meters in sequence."""
    route = session.exec(select(Route).where(Route.code == route_code)).first()
    if route is None:
        raise NotFound(f"no route {route_code!r}", code="route_not_found")
    return list(
        session.exec(select(Meter).where(Meter.route_id == route.id).order_by(col(Meter.sequence)))
    )


def _account_numbers(session: Session, meters: list[Meter]) -> tuple[str, ...]:
    numbers = (
        session.exec(select(Account.account_no).where(Account.id == m.account_id)).one()
        for m in meters
    )
    return tuple(dict.fromkeys(numbers))


def _past_repairs(session: Session, agent: User, meters: list[Meter]) -> None:
    """Urgent faults of the past weeks, restored after PAST_REPAIRS_MIN: what the estimate for
    a fault nobody has given a time for is made from."""
    now = clock.now().replace(microsecond=0)
    for i, took in enumerate(PAST_REPAIRS_MIN):
        job = create_job(
            session,
            creator=agent,
            draft=JobDraft(
                kind="fault",
                urgency="urgent",
                content="fuse blown in the street cabinet",
                accounts=_account_numbers(session, meters[i : i + 1]),
                crew=("crew2",),
            ),
        )
        reported = now - timedelta(days=4 * (i + 1), hours=i)
        job.status, job.reported_at, job.dispatched_at = "finished", reported, reported
        job.started_at = reported + timedelta(minutes=took / 3)
        job.finished_at = job.last_update_at = reported + timedelta(minutes=took)
        session.add(job)
    session.flush()


def _restored_outage(
    session: Session, settings: Settings, agent: User, meters: list[Meter]
) -> None:
    """A fault on R-101's second street crew2 restored an hour ago: its callers hear "restored
    at …" and what to do if their own power is still off."""
    now = clock.now().replace(microsecond=0)
    crew = session.exec(select(User).where(User.username == "crew2")).one()
    job = create_job(
        session,
        creator=agent,
        draft=JobDraft(
            kind="fault",
            urgency="urgent",
            content="overhead line down after the storm",
            accounts=_account_numbers(session, meters),
            crew=("crew2",),
        ),
    )
    job.reported_at = now - timedelta(hours=3)
    session.add(job)
    device_id = "demo-handheld-crew2"
    session.add(Device(id=device_id, last_user_id=crew.id))
    session.flush()
    events = [
        ("started", now - timedelta(hours=2, minutes=30)),
        ("finished", now - timedelta(hours=1)),
    ]
    push(
        session,
        settings,
        pusher=Pusher(user=crew, device_id=device_id),
        payload={
            "job_events": [
                {
                    "id": str(uuid.uuid4()),
                    "job_id": str(job.id),
                    "kind": kind,
                    "at": at.isoformat(),
                    "note": "line re-strung" if kind == "finished" else None,
                }
                for kind, at in events
            ]
        },
    )


def _push_demo_days(session: Session, settings: Settings, *, yesterday: date) -> None:
    """Yesterday's work, pushed as the handhelds would: reader1 walked R-101 honestly (two
    meters skipped, the last few not reached yet); reader2 stayed home and typed R-102 (估抄).
    A newcomer opens the audit page and sees what clean and flagged routes look like."""
    start = datetime.combine(yesterday, time(9, 0), tzinfo=LOCAL)
    for plan, day in ((ROUTES[0], "honest"), (ROUTES[1], "home")):
        reader = session.exec(select(User).where(User.username == plan.reader)).one()
        assignment = session.exec(
            select(Assignment).join(Route).where(Route.code == plan.code)
        ).one()
        meters = list(
            session.exec(
                select(Meter)
                .where(Meter.route_id == assignment.route_id)
                .order_by(col(Meter.sequence))
            )
        )
        assert assignment.id is not None
        if day == "honest":
            walked = meters[:-4]
            skips = {walked[5].id: "dog", walked[17].id: "locked"}
            readings, track = honest_day(
                walked, start, assignment_id=assignment.id, seed=11, skips=skips
            )
        else:
            home = offset(meters[0].lat, meters[0].lon, 900.0, -1200.0)
            readings, track = home_day(
                meters, start, assignment_id=assignment.id, home=home, seed=12
            )
        device_id = f"demo-handheld-{plan.reader}"
        session.add(Device(id=device_id, last_user_id=reader.id))
        session.flush()
        # No sent_at: these pushes are replayed now, a day late, by no device clock.
        push(
            session,
            settings,
            pusher=Pusher(user=reader, device_id=device_id),
            payload={"readings": readings, "track_points": track},
        )
    # The demo is one unit of work: what its pushes queued is validated in it, so its flags are
    # there when it is loaded, with or without a server running.
    validation_queue.validate_queued(session, settings)


def _demo_outages(session: Session, settings: Settings) -> None:
    """Outages for the agents' board: a fault crew1 is repairing now on R-101's first street
    (the crew's estimate), one on R-102's first street crew2 has not reached yet (an estimate
    from the past repairs), one on R-101's second street restored an hour ago, and a planned
    transformer replacement on R-102 the day after tomorrow."""
    agent = session.exec(select(User).where(User.username == "agent")).one()
    crew = session.exec(select(User).where(User.username == "crew1")).one()
    meters = route_meters(session, route_code=ROUTES[0].code)
    first_street = meters[:6]
    _past_repairs(session, agent, meters[20:26])
    _restored_outage(session, settings, agent, meters[14:20])
    accounts = tuple(
        session.exec(select(Account.account_no).where(Account.id == m.account_id)).one()
        for m in first_street
    )
    now = clock.now().replace(microsecond=0)
    fault = create_job(
        session,
        creator=agent,
        draft=JobDraft(
            kind="fault",
            urgency="urgent",
            content="cable fault at the street cabinet",
            lat=first_street[0].lat,
            lon=first_street[0].lon,
            address="street cabinet, first street",
            accounts=accounts,
            crew=("crew1",),
        ),
    )
    fault.reported_at = now - timedelta(minutes=40)
    session.add(fault)
    device_id = "demo-handheld-crew1"
    session.add(Device(id=device_id, last_user_id=crew.id))
    session.flush()
    push(
        session,
        settings,
        pusher=Pusher(user=crew, device_id=device_id),
        payload={
            "job_events": [
                {
                    "id": str(uuid.uuid4()),
                    "job_id": str(fault.id),
                    "kind": "started",
                    "at": (now - timedelta(minutes=15)).isoformat(),
                    "fix": {
                        "lat": first_street[0].lat,
                        "lon": first_street[0].lon,
                        "accuracy_m": 6.0,
                        "fix_time": (now - timedelta(minutes=15)).isoformat(),
                    },
                    "expected_finish": (now + timedelta(hours=2)).isoformat(),
                }
            ],
            # Where crew1's handheld last was: at the cabinet, five minutes ago.
            "track_points": [
                {
                    "t": (now - timedelta(minutes=5)).isoformat(),
                    "lat": first_street[0].lat + 0.00004,
                    "lon": first_street[0].lon,
                    "accuracy_m": 8.0,
                }
            ],
        },
    )
    unattended = create_job(
        session,
        creator=agent,
        draft=JobDraft(
            kind="fault",
            urgency="urgent",
            content="no power in the whole building since the storm",
            accounts=_account_numbers(
                session, route_meters(session, route_code=ROUTES[1].code)[:4]
            ),
            crew=("crew2",),
        ),
    )
    unattended.reported_at = now - timedelta(minutes=25)
    session.add(unattended)
    in_two_days = now.astimezone(LOCAL).date() + timedelta(days=2)
    start = datetime.combine(in_two_days, time(9, 0), tzinfo=LOCAL)
    create_job(
        session,
        creator=agent,
        draft=JobDraft(
            kind="planned",
            urgency="normal",
            content="replace transformer T3",
            route_code=ROUTES[1].code,
            planned_start=start,
            expected_finish=start + timedelta(hours=6),
        ),
    )
