"""What judging a replayed track costs: one reader-day of about 6,000 points against the 30
earlier days of the same reader (about 180,000 points), the case the server meets on every push.

Figures (medians of several runs, in one run of this script so the ratios hold on any machine):
- replayed_track, pure: a day that copies none of the 30 (every run looked up, none found: the
  usual case) and a day that replays one of them;
- baseline: one pass over the earlier points' rows, turning each (time, lat, lon) into what
  the rule reads (seconds since the epoch), the least the runner does with every row; the
  ratio;
- on SQLite: validate_assignment of the route-day with the 30 earlier days on the server, with
  and without the look-back (replay_lookback_days=0), and the plain SELECT of the earlier rows.

Run: .venv/bin/python -m bench.replay  (a temporary SQLite database)
"""

from __future__ import annotations

import gzip
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, text
from sqlmodel import Session, col, select

from bench.validation import PASSWORD, START, build_route, route_meters
from common.rules.copies import replayed_track, stamps
from common.rules.facts import EarlierTrack
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.demo.days import honest_day, track_facts
from server.main import create_app
from server.models import Assignment, Device, Meter, TrackPoint, User
from server.validation.runner import validate_assignment

EARLIER_DAYS = 30
RUNS = 5
DAY = timedelta(days=1)


def median_s(run: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def earlier_days() -> list[list[dict[str, Any]]]:
    """The reader's honest walks of the route on each of the 30 days before START."""
    meters = route_meters()
    return [
        honest_day(meters, START - d * DAY, assignment_id=0, seed=100 + d)[1]
        for d in range(1, EARLIER_DAYS + 1)
    ]


def at(p: dict[str, Any]) -> datetime:
    """A pushed point's time."""
    return datetime.fromisoformat(p["t"])


def shifted(track: list[dict[str, Any]], by: timedelta) -> list[dict[str, Any]]:
    return [{**p, "t": (at(p) + by).isoformat()} for p in track]


def pure_figures(days: list[list[dict[str, Any]]]) -> dict[str, float]:
    earlier = [
        EarlierTrack((START - (d + 1) * DAY).date(), stamps(track_facts(w)))
        for d, w in enumerate(days)
    ]
    honest = track_facts(honest_day(route_meters(), START, assignment_id=0, seed=7)[1])
    copy = track_facts(shifted(days[0], DAY))
    assert replayed_track(honest, earlier) is None
    found = replayed_track(copy, earlier)
    assert found is not None
    assert found[1] == 86_400
    rows = [(datetime.fromtimestamp(t, UTC), lat, lon) for e in earlier for t, lat, lon in e.points]
    return {
        "points_today": len(honest),
        "points_earlier": len(rows),
        "honest": median_s(lambda: replayed_track(honest, earlier)),
        "replay": median_s(lambda: replayed_track(copy, earlier)),
        "baseline": median_s(lambda: [(t.timestamp(), lat, lon) for t, lat, lon in rows]),
    }


def db_figures(days: list[list[dict[str, Any]]]) -> dict[str, float]:
    url = f"sqlite:///{tempfile.mkdtemp()}/bench-replay.db"
    migrate.upgrade(url)
    settings = Settings(
        environment="test", database_url=url, password_time_cost=1, password_memory_kib=1024
    )
    engine = make_engine(url)
    tag = uuid.uuid4().hex[:6]
    reader, device = f"replay-{tag}", f"bench-replay-{tag}"
    with Session(engine) as session:
        assignment_id = build_route(session, settings, reader, reader)
        user_id = session.exec(select(User.id).where(User.username == reader)).one()
        session.add(Device(id=device, last_user_id=user_id))
        session.commit()
        session.execute(
            insert(TrackPoint),
            [
                {
                    "device_id": device,
                    "user_id": user_id,
                    "t": at(p),
                    "lat": p["lat"],
                    "lon": p["lon"],
                    "accuracy_m": p["accuracy_m"],
                    "provider": p["provider"],
                    "mock": p["mock"],
                }
                for track in days
                for p in track
            ],
        )
        session.commit()
        meters = list(
            session.exec(
                select(Meter)
                .join(Assignment, col(Assignment.route_id) == Meter.route_id)
                .where(Assignment.id == assignment_id)
                .order_by(col(Meter.sequence))
            )
        )
    wire, track = honest_day(meters, START, assignment_id=assignment_id, seed=7)
    with TestClient(create_app(settings, engine)) as client:
        token = client.post(
            "/api/v1/auth/login",
            json={"username": reader, "password": PASSWORD, "device_id": device},
        ).json()["access_token"]
        response = client.post(
            "/api/v1/sync/push",
            content=gzip.compress(json.dumps({"readings": wire, "track_points": track}).encode()),
            headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 200, response.text

    def run(with_settings: Settings) -> None:
        with Session(engine) as session:
            flags = validate_assignment(
                session, assignment_id=assignment_id, settings=with_settings, now=START + DAY
            )
            assert flags == []
            session.commit()

    blind = Settings(**{**settings.model_dump(), "validation_replay_lookback_days": 0})
    since = START - (EARLIER_DAYS + 5) * DAY

    def select_rows() -> int:
        with engine.connect() as connection:
            return len(
                connection.execute(
                    text("SELECT user_id, device_id, t, lat, lon FROM track_points WHERE t >= :s"),
                    {"s": since},
                ).all()
            )

    figures = {
        "with": median_s(lambda: run(settings)),
        "without": median_s(lambda: run(blind)),
        "select": median_s(select_rows),
        "rows": select_rows(),
    }
    engine.dispose()
    return figures


def main() -> None:
    days = earlier_days()
    pure = pure_figures(days)
    print(
        f"replayed_track on a day of {pure['points_today']:,.0f} points against "
        f"{EARLIER_DAYS} earlier days ({pure['points_earlier']:,.0f} points):"
    )

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"{label:<58}{seconds * 1000:9.1f} ms{note}")

    line("  honest day (no copy)", pure["honest"])
    line("  a replay of one of them", pure["replay"])
    line("  baseline: one pass over the earlier rows", pure["baseline"])
    print(f"{'  ratio rule (honest day) / baseline':<58}{pure['honest'] / pure['baseline']:9.2f}x")
    db = db_figures(days)
    print(f"validate_assignment on SQLite ({db['rows']:,.0f} track rows on the server):")
    line("  with the 35-day look-back", db["with"])
    line("  without it (replay_lookback_days=0)", db["without"])
    line("  baseline: SELECT of the track rows alone", db["select"])
    print(
        f"{'  ratio look-back cost / SELECT':<58}"
        f"{(db['with'] - db['without']) / db['select']:9.2f}x"
    )


if __name__ == "__main__":
    main()
