"""A reader-day over GPRS: the bytes on the wire of the real handheld client, contract 2 against
contract 1 with plain answers (what the handheld and server did before), in the same run.

The handheld is mobile.core (its Store and SyncClient) talking HTTP to the real server (uvicorn
on a loopback port); a counting transport under the client counts what goes over the link:
request line, headers and body up; status line, headers and body (as sent, gzipped or not)
down. A reader-day: a pull of a 300-meter route, then 300 readings with their fixes and ~6,000
noisy track points (a walk with GPS noise and a stop at each meter, a point every 5-6 s walking
and every 30 s standing, accuracy varying as a real fix's does), pushed in the client's batches.

Targets (issue 13): a reader-day <= 40 KB up and <= 8 KB of answers, the exchange under 10 s at
40 kbit/s, a 300-meter pull <= 15 KB.

Run: .venv/bin/python -m bench.wire [--database-url URL]  (default: a temporary SQLite)
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlmodel import Session

from bench.sync_push import LINK_BITS_PER_S, N_METERS, PASSWORD, TODAY, build_day
from common import wire
from common.contract import CONTRACT_VERSION_HEADER
from common.rules.facts import CHINA_STANDARD_TIME
from mobile.core.store import Store
from mobile.core.sync import SyncClient
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app

N_POINTS = 6_000
KB = 1000  # the targets are in kB: bytes over the link, as a GPRS bill counts them


@dataclass
class Tally:
    """Bytes over the link, by phase."""

    phase: str = "login"
    up: dict[str, int] = field(default_factory=dict)
    down: dict[str, int] = field(default_factory=dict)

    def add(self, up: int = 0, down: int = 0) -> None:
        self.up[self.phase] = self.up.get(self.phase, 0) + up
        self.down[self.phase] = self.down.get(self.phase, 0) + down


class Counting(httpx.BaseTransport):
    """Counts the bytes an HTTP/1.1 exchange puts on the link (headers as written, bodies as
    sent: the answer's before httpx inflates it)."""

    def __init__(self, tally: Tally) -> None:
        self.inner = httpx.HTTPTransport()
        self.tally = tally

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        head = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
        self.tally.add(up=len(head.encode()) + len(body))
        response = self.inner.handle_request(request)
        raw = b"".join(response.iter_raw())  # as sent: still gzipped
        response.close()
        status = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n"
        status += "".join(f"{k}: {v}\r\n" for k, v in response.headers.items()) + "\r\n"
        self.tally.add(down=len(status.encode()) + len(raw))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            request=request,
        )

    def close(self) -> None:
        self.inner.close()


def noisy_day(rnd: random.Random, meters: list[wire.Meter], start: datetime) -> Iterator[Any]:
    """The day as the handheld records it: ("point", t, lat, lon, accuracy) while walking from
    meter to meter with GPS noise, ("reading", meter, t, fix) at each meter."""
    t = start
    lat, lon = meters[0].lat - 3e-4, meters[0].lon
    noise_x = noise_y = 0.0
    points_per_meter = N_POINTS / len(meters)
    made = 0.0
    for i, meter in enumerate(meters):
        # Walking to the meter: points every 5-6 s, the position drifting with GPS noise.
        walk = int(made + points_per_meter * 0.8) - int(made)
        for step in range(1, walk + 1):
            t += timedelta(seconds=5 if rnd.random() < 0.9 else 6)
            f = step / walk
            noise_x, noise_y = 0.8 * noise_x + rnd.gauss(0, 1.5), 0.8 * noise_y + rnd.gauss(0, 1.5)
            here_lat = lat + (meter.lat - lat) * f + noise_y * 9e-6
            here_lon = lon + (meter.lon - lon) * f + noise_x * 1.04e-5
            yield "point", t, here_lat, here_lon, 3 + abs(rnd.gauss(0, 4)) + rnd.random()
        lat, lon = meter.lat, meter.lon
        made += points_per_meter * 0.8
        # At the meter: a point every 30 s while reading it.
        stay = int(made + points_per_meter * 0.2) - int(made)
        for _ in range(stay):
            t += timedelta(seconds=30)
            noise_x, noise_y = 0.8 * noise_x + rnd.gauss(0, 1.5), 0.8 * noise_y + rnd.gauss(0, 1.5)
            yield "point", t, lat + noise_y * 9e-6, lon + noise_x * 1.04e-5, 3 + rnd.random() * 8
        made += points_per_meter * 0.2
        # The handheld's clock, to the microsecond, as a reading's times are.
        read_at = t + timedelta(microseconds=rnd.randrange(10**6))
        fix = wire.Fix(
            lat=lat + rnd.gauss(0, 3e-5),
            lon=lon + rnd.gauss(0, 3e-5),
            accuracy_m=3 + abs(rnd.gauss(0, 3)),
            fix_time=t,
        )
        yield "reading", meter, read_at, fix, Decimal(1000 + 37 * i) / 10


def record_day(store: Store, seed: int) -> None:
    [assignment] = store.assignments()
    meters = store.meters(assignment.id)
    yesterday = TODAY - timedelta(days=1)
    start = datetime(yesterday.year, yesterday.month, yesterday.day, 8, tzinfo=CHINA_STANDARD_TIME)
    wire_meters = [
        wire.Meter(
            id=m.id, meter_no="", account_no="", customer_name="", address="", lat=m.lat,
            lon=m.lon, digits=6, multiplier=Decimal(1), last_reading=None, last_read_at=None,
            expected_low=None, expected_high=None, sequence=i,
        )
        for i, m in enumerate(meters)
    ]  # fmt: skip
    for event in noisy_day(random.Random(seed), wire_meters, start):
        if event[0] == "point":
            _, t, lat, lon, accuracy = event
            store.add_track_point(t=t, lat=lat, lon=lon, accuracy_m=accuracy)
        else:
            _, meter, read_at, fix, value = event
            store.confirm_reading(assignment.id, meter.id, value=value, read_at=read_at, fix=fix)


def push_as_contract_1(client: SyncClient) -> None:
    """The baseline: the handheld's push as it was before contract 2 (a v1 body, gzipped) and
    a server that answered plain (the client sends no Accept-Encoding of gzip)."""
    while True:
        batch = client.store.outbox_batch(
            max_readings=client.batch_readings, max_points=client.batch_points
        )
        if batch.empty:
            return
        raw = gzip.compress(json.dumps(batch.push.to_json(), separators=(",", ":")).encode())
        body = client._call(
            "POST",
            "/sync/push",
            content=raw,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                CONTRACT_VERSION_HEADER: "1",
                "Accept-Encoding": "identity",
            },
        )
        client.store.record_push(batch, wire.PushAnswer.from_json(body))


def serve(settings: Settings, engine: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def one_day(url: str, tmp: Path, reader: str, *, contract: int) -> Tally:
    tally = Tally()
    store = Store(tmp / f"{reader}.db")
    client = SyncClient(store, server_url=url, transport=Counting(tally))
    client.login(reader, PASSWORD)
    tally.phase = "pull"
    if contract == 1:
        # The old server answered plain: no gzip asked for.
        old = client._headers
        client._headers = lambda: old() | {"Accept-Encoding": "identity"}  # type: ignore[method-assign]
    client.pull()
    record_day(store, seed=13)
    tally.phase = "push"
    if contract == 1:
        push_as_contract_1(client)
    else:
        client.push()
    if store.sync_state().waiting:
        raise SystemExit(f"{reader}: {store.sync_state().waiting} records not taken")
    client.close()
    store.close()
    return tally


def seconds(n_bytes: int) -> float:
    return n_bytes * 8 / LINK_BITS_PER_S


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        settings = Settings(
            environment="test", database_url=url, password_time_cost=1, password_memory_kib=1024
        )
        engine = make_engine(url)
        tag = uuid.uuid4().hex[:6]
        with Session(engine) as session:
            build_day(session, settings, f"V2-{tag}", f"v2-{tag}")
            build_day(session, settings, f"V1-{tag}", f"v1-{tag}")
        base, server, thread = serve(settings, engine)
        try:
            new = one_day(base, Path(tmp), f"v2-{tag}", contract=2)
            old = one_day(base, Path(tmp), f"v1-{tag}", contract=1)
        finally:
            server.should_exit = True
            thread.join(timeout=20)
            engine.dispose()

    print(
        f"database: {url.split(':', 1)[0]}; a reader-day = {N_METERS} readings + ~{N_POINTS} "
        f"noisy track points, the real handheld client; link {LINK_BITS_PER_S // 1000} kbit/s"
    )
    print(f"{'figure':34} {'contract 2':>11} {'v1/raw':>11} {'ratio':>7}  target")
    rows = [
        ("pull of the 300-meter route, kB", new.down["pull"] + new.up["pull"],
         old.down["pull"] + old.up["pull"], 15 * KB),
        ("push up (the day's outbox), kB", new.up["push"], old.up["push"], 40 * KB),
        ("push answers, kB", new.down["push"], old.down["push"], 8 * KB),
    ]  # fmt: skip
    for name, ours, theirs, target in rows:
        verdict = "ok" if ours <= target else "MISSED"
        print(
            f"{name:34} {ours / KB:11.1f} {theirs / KB:11.1f} {ours / theirs:7.2f}  "
            f"<= {target / KB:.0f} {verdict}"
        )
    exchange_new = new.up["push"] + new.down["push"]
    exchange_old = old.up["push"] + old.down["push"]
    print(
        f"{'push exchange at 40 kbit/s, s':34} {seconds(exchange_new):11.1f} "
        f"{seconds(exchange_old):11.1f} {exchange_new / exchange_old:7.2f}  < 10 "
        f"{'ok' if seconds(exchange_new) < 10 else 'MISSED'}"
    )
    day_new = exchange_new + new.up["pull"] + new.down["pull"]
    day_old = exchange_old + old.up["pull"] + old.down["pull"]
    print(
        f"{'with the pull, at 40 kbit/s, s':34} {seconds(day_new):11.1f} "
        f"{seconds(day_old):11.1f} {day_new / day_old:7.2f}"
    )
    print(
        f"per item up (contract 2): {new.up['push'] / (N_POINTS + N_METERS):.1f} B "
        f"(headers included; login {new.up['login'] + new.down['login']} B not counted above)"
    )


if __name__ == "__main__":
    main()
