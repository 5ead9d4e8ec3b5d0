"""How fast `import-meters` loads a utility's billing export, and in how much memory, against a
raw COPY of the same file in the same run.

The file: ROWS meters (default 300,000), two per account, 300 to a route, 10 grids, every
optional column filled, written to a temporary file. Figures:
- raw: the file streamed into a table of text columns with COPY ... FORMAT csv (PostgreSQL) or
  csv.reader + executemany (SQLite) - the least any import does;
- Gridwalk, first import into an empty database (everything created) and the same file again
  (everything unchanged), each timed, and the ratio to raw;
- memory: the process's peak resident set (resource.getrusage, ru_maxrss) after each import,
  and the peak of Python's own allocations during a third import (tracemalloc, which slows that
  run and adds its own bookkeeping to the resident set, so it comes last and is not timed).

On PostgreSQL the imports run as the URL's role, the tables' owner (a first load by the owner
checks the meters' foreign keys once, after the insert: imports._meter_keys_checked_once); with
--pg-app or TEST_APP_DATABASE_URL (a role that owns nothing, as the server runs in production)
the first and second imports are timed again as that role, which keeps the per-row checks.

Run: .venv/bin/python -m bench.import_meters [--rows N] [--pg URL] [--pg-app URL]  SQLite in a
temporary file, then PostgreSQL when --pg or TEST_DATABASE_URL is given. The PostgreSQL database
is emptied first (its public schema dropped): give it a throw-away one, such as the tests'.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from bench.database import fresh
from server.catalog.imports import import_meters_csv
from server.catalog.meter_csv import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from server.core.db import make_engine

COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
MIB = 1024 * 1024


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for i in range(rows):
            route = i // 300
            out.writerow(
                (
                    f"A{i // 2:07d}",
                    f"Customer {i // 2}",
                    f"{i // 2 + 1} Long Street, Block {route}",
                    f"M{i:08d}",
                    f"{30.2 + (i % 300) * 3e-4:.6f}",
                    f"{120.1 + route * 1e-3:.6f}",
                    f"R{route:05d}",
                    (i % 300) * 10,
                    6,
                    "1",
                    f"{1000 + i % 5000}.5",
                    "2026-10-25T09:00:00",
                    "50",
                    "400",
                    f"G{route % 10:02d}",
                    "",
                    f"138{i // 2:08d}",  # the customer's phone, as a utility's file has it
                )
            )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def raw_copy(url: str, path: Path) -> float:
    names = ", ".join(f"{c} text" for c in COLUMNS)
    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TEMP TABLE raw_meters ({names})"))
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            t0 = time.perf_counter()
            with (
                path.open("rb") as f,
                cursor.copy("COPY raw_meters FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            ):
                while chunk := f.read(1 << 16):
                    copy.write(chunk)
            elapsed = time.perf_counter() - t0
        engine.dispose()
        return elapsed
    db = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TEMP TABLE raw_meters ({names})")
    marks = ", ".join("?" for _ in COLUMNS)
    t0 = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        while batch := [row for _, row in zip(range(5000), reader, strict=False)]:
            conn.executemany(f"INSERT INTO raw_meters VALUES ({marks})", batch)  # noqa: S608 - placeholders only
    conn.commit()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def timed_import(url: str, path: Path) -> tuple[float, dict[str, int]]:
    engine = make_engine(url)
    with Session(engine) as session, path.open("rb") as stream:
        t0 = time.perf_counter()
        report = import_meters_csv(session, stream, actor_id=None)
        session.commit()
        elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed, report.as_dict()


def run(url: str, path: Path, rows: int, app_url: str | None = None) -> None:
    fresh(url)
    backend = url.split(":", 1)[0].split("+", 1)[0]
    load = os.getloadavg()[0]
    raw = raw_copy(url, path)
    first, report = timed_import(url, path)
    assert report["meters_created"] == rows, report
    rss_first = peak_rss_mib()
    again, report = timed_import(url, path)
    assert report["unchanged"] == rows, report
    rss_again = peak_rss_mib()
    tracemalloc.start()
    timed_import(url, path)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"\n{backend}: {rows:,} rows, {path.stat().st_size / MIB:.1f} MiB file "
        f"(load average {load:.1f} at the start)"
    )
    print(f"  raw (COPY / executemany of the file)   {raw:7.2f} s")
    print(f"  import, empty database                  {first:7.2f} s  {first / raw:5.1f}x raw")
    print(f"  import, same file again (unchanged)     {again:7.2f} s  {again / raw:5.1f}x raw")
    print(
        f"  peak RSS of the process {rss_first:.0f} MiB after the first import, "
        f"{rss_again:.0f} MiB after the second; Python allocations' peak {traced / MIB:.0f} MiB "
        "(a third import, traced)"
    )
    if app_url:
        fresh(url)
        first, report = timed_import(app_url, path)
        assert report["meters_created"] == rows, report
        again, report = timed_import(app_url, path)
        assert report["unchanged"] == rows, report
        print(f"  as the app role (owns no table), empty  {first:7.2f} s  {first / raw:5.1f}x raw")
        print(f"  as the app role, same file again        {again:7.2f} s  {again / raw:5.1f}x raw")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--pg", help="a throw-away PostgreSQL database (emptied first)")
    parser.add_argument("--pg-app", help="the app role's URL to the same database")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    pg = args.pg or os.environ.get("TEST_DATABASE_URL")
    app = args.pg_app or (os.environ.get("TEST_APP_DATABASE_URL") if not args.pg else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meters.csv"
        write_file(path, args.rows)
        print(f"before any import: peak RSS {peak_rss_mib():.0f} MiB")
        if pg:
            run(pg, path, args.rows, app)
        if not args.no_sqlite:
            run(f"sqlite:///{tmp}/bench.db", path, args.rows)


if __name__ == "__main__":
    main()
