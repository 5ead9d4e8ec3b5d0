"""The device database's health, checked at every start, before the app uses it.

Two things can go wrong with a file on a handheld, and neither may pass in silence:
- it is damaged (`PRAGMA quick_check` fails, it is not a database, its schema is broken): it is
  moved aside with its -wal and -shm, never deleted, and what can be read from it is recovered
  into a fresh file;
- it lost commits (its -wal deleted or damaged, the file truncated or removed): SQLite then
  opens an older or empty database as if nothing happened. The tally, a small side file rewritten
  after every commit, holds the database's change number and what it held; a database whose
  number is behind its tally lost work, and the user is told what it held.

Recovery reads every table of a copy row by row (forward, then backward past a damaged page),
with the copy's header rebuilt if it is garbled and its pages read past a truncation; this is
Python's sqlite3 alone, so it works the same on Android. Where the sqlite3 command-line tool is
installed and its `.recover` works, its rows are merged in too (by primary key). Debian 12's
sqlite3 3.40.1 tool fails `.recover` even on a sound file ("SQL logic error"): it is then left out.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from common import clock
from common.wire import iso
from mobile.core import migrations
from mobile.core.language import N_

log = logging.getLogger("gridwalk.device")

# SQLite's companions of a database file in WAL mode: they move with it.
COMPANIONS = ("-wal", "-shm")
TALLY_SUFFIX = ".tally"
# The tables recovered from a damaged file, in an order that needs no foreign key off.
RECOVERED_TABLES = migrations.WORK_TABLES
MAGIC = b"SQLite format 3\x00"
# Page sizes to try when a garbled header no longer says: SQLite's default first.
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
# A bound on the sqlite3 tool's `.recover`: a failure to recover, never a hang at start.
RECOVER_TIMEOUT_S = 120


@dataclass(frozen=True)
class Tally:
    """What the database held after its last commit, kept beside it."""

    change: int
    device_id: str | None
    confirmed: int  # readings and skips confirmed here and still held
    events: int  # job events logged here and still held
    unsent: int  # of those, not yet answered by the server
    at: str

    @classmethod
    def of(cls, db: sqlite3.Connection) -> Tally:
        """The tally of an open database (inside its transaction, so it is one moment)."""
        row = db.execute(
            "SELECT (SELECT number FROM change_counter WHERE id = 1), "
            "(SELECT value FROM settings WHERE key = 'device_id'), "
            "(SELECT COUNT(*) FROM readings WHERE state = 'confirmed'), "
            "(SELECT COUNT(*) FROM job_events), "
            "(SELECT COUNT(*) FROM readings WHERE state = 'confirmed' AND "
            "sync_status = 'pending') + "
            "(SELECT COUNT(*) FROM job_events WHERE sync_status = 'pending')"
        ).fetchone()
        return cls(
            change=int(row[0] or 0),
            device_id=row[1],
            confirmed=int(row[2]),
            events=int(row[3]),
            unsent=int(row[4]),
            at=iso(clock.now()),
        )

    def held(self) -> dict[str, int]:
        """What it held, as the notice's numbers (notice_text puts them into words)."""
        return {"confirmed": self.confirmed, "events": self.events, "unsent": self.unsent}


def tally_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + TALLY_SUFFIX)


def write_tally(db_path: Path, tally: Tally) -> None:
    """Replace the tally at once (a crash leaves the old one or the new one, never half).

    Written after the commit and not synced: if it is lost it is older than the database,
    which can only hide a loss, never invent one."""
    path = tally_path(db_path)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(asdict(tally)), encoding="utf-8")
    os.replace(part, path)


def read_tally(db_path: Path) -> Tally | None:
    path = tally_path(db_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Tally(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("the tally %s is unreadable (%s): lost commits cannot be detected", path, exc)
        return None


# The notice's sentences, kept as (message, numbers) so that it is said in the language of
# whoever reads it: the check runs before the app knows its user's language.
DAMAGED = N_(
    "This handheld's database was damaged ({problem}). It was moved aside as {aside}. "
    "Recovered: {recovered}."
)
SOME_LOST = N_("Before the damage it held {before}: some are lost.")
TELL_SUPERVISOR = N_("Tell your supervisor.")
LOST_WORK = N_(
    "This handheld's database lost recent work: at {at} it held {before}; now it holds {now}."
)
EMPTY_MOVED = N_("The empty file was moved aside as {aside}.")
SENT_ARE_SAFE = N_("Records already sent are safe on the server; the others are lost.")
HELD = N_(
    "{confirmed} confirmed readings and skips and {events} job events ({unsent} not yet sent)"
)
NOTHING = N_("nothing")

Notice = list[tuple[str, dict[str, Any]]]


def notice_text(
    notice: Notice,
    say: Callable[[str], str] = lambda message: message,
    moment: Callable[[datetime], str] = lambda t: iso(t),
) -> str:
    """The notice in words, each sentence through `say` (the handheld's `_`; English if none)
    and its time through `moment`."""

    def word(value: Any) -> str:
        if isinstance(value, str) and value[:4].isdigit() and "T" in value:
            try:
                return moment(datetime.fromisoformat(value))
            except ValueError:
                return value
        if isinstance(value, dict):
            return say(HELD).format(**value)
        if value is None:
            return say(NOTHING)
        return str(value)

    return " ".join(
        say(message).format(**{key: word(value) for key, value in params.items()})
        for message, params in notice
    )


@dataclass(frozen=True)
class Finding:
    """What the start-up check found and did, for the user and the log."""

    notice: Notice  # shown on start, in the reader's language, until the user has seen it
    tally: Tally | None  # the last tally before the check, if any
    damaged: bool  # the file was moved aside and rebuilt

    @property
    def message(self) -> str:
        """The notice in English, for the log."""
        return notice_text(self.notice)


def check_at_start(db_path: Path) -> Finding | None:
    """Check the database before it is opened for use; move a damaged or emptied file aside
    and recover what it holds. Returns what to tell the user, or None when all is well."""
    tally = read_tally(db_path)
    problem = damage(db_path) if db_path.exists() else None
    if problem is not None:
        aside = move_aside(db_path)
        recovered = recover(aside, db_path)
        notice: Notice = [
            (DAMAGED, {"problem": problem, "aside": aside.name, "recovered": recovered.held()})
        ]
        if tally is not None and tally.confirmed + tally.events > recovered.confirmed + (
            recovered.events
        ):
            notice.append((SOME_LOST, {"before": tally.held()}))
        notice.append((TELL_SUPERVISOR, {}))
        finding = Finding(notice=notice, tally=tally, damaged=True)
        log.error("device database: %s", finding.message)
        return finding
    if tally is None or tally.change == 0:
        return None
    now = _tally_of_file(db_path)
    if now is not None and now.change >= tally.change:
        return None
    emptied = now is None or now.change == 0
    lost: Notice = [
        (
            LOST_WORK,
            {"at": tally.at, "before": tally.held(), "now": now.held() if now else None},
        )
    ]
    if emptied and db_path.exists():
        # Nothing in it to keep using: aside, as it was found, for whoever looks into it.
        lost.append((EMPTY_MOVED, {"aside": move_aside(db_path).name}))
    lost += [(SENT_ARE_SAFE, {}), (TELL_SUPERVISOR, {})]
    finding = Finding(notice=lost, tally=tally, damaged=False)
    log.error("device database: %s", finding.message)
    return finding


def damage(db_path: Path) -> str | None:
    """What is wrong with the file, in a few words, or None if it is sound."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        result = [row[0] for row in db.execute("PRAGMA quick_check")]
        if result != ["ok"]:
            return f"quick_check: {result[0]}"
        tables = _tables(db)
        done = (
            {row[0] for row in db.execute("SELECT name FROM _migrations")}
            if "_migrations" in tables
            else set()
        )
        return migrations.schema_problem(tables, done)
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        db.close()


def _tally_of_file(db_path: Path) -> Tally | None:
    """The tally a sound file gives now; None if it has no tables yet."""
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True)
    try:
        tables = _tables(db)
        if "readings" not in tables:
            return None
        if "change_counter" not in tables:
            # A file from before the counter: it cannot be behind a tally it never wrote.
            return Tally(change=0, device_id=None, confirmed=0, events=0, unsent=0, at="")
        return Tally.of(db)
    finally:
        db.close()


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def move_aside(db_path: Path) -> Path:
    """Rename the file and its companions to `<name>.damaged-<UTC time>`; never delete."""
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    aside = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db_path.with_name(f"{db_path.name}.damaged-{stamp}-{n}")
    db_path.rename(aside)
    for suffix in COMPANIONS:
        companion = db_path.with_name(db_path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    return aside


def recover(aside: Path, db_path: Path) -> Tally:
    """Make a fresh database at db_path with what can be read from the damaged one; return
    what it holds. The file aside stays as found: recovery reads a copy."""
    fresh = sqlite3.connect(db_path, isolation_level=None)
    try:
        fresh.execute("PRAGMA journal_mode=WAL")
        migrations.migrate(fresh)
        with tempfile.TemporaryDirectory(dir=db_path.parent) as scratch:
            copy = Path(scratch) / "damaged.db"
            shutil.copyfile(aside, copy)
            for suffix in COMPANIONS:
                companion = aside.with_name(aside.name + suffix)
                if companion.exists():
                    shutil.copyfile(companion, copy.with_name(copy.name + suffix))
            _mend_header(copy)
            sources = [copy]
            recovered = _recover_with_tool(copy, Path(scratch) / "recovered.db")
            if recovered is not None:
                sources.append(recovered)
            fresh.execute("BEGIN IMMEDIATE")
            for source in sources:
                _copy_rows(source, fresh)
            tally = Tally.of(fresh)
            fresh.execute("COMMIT")
    finally:
        fresh.close()
    return tally


def _recover_with_tool(damaged: Path, target: Path) -> Path | None:
    """The sqlite3 tool's `.recover` of the file into target, or None where it is missing or
    fails (the rows read directly are then all there is)."""
    tool = shutil.which("sqlite3")
    if tool is None:
        return None
    try:
        dump = subprocess.run(  # noqa: S603 - our file, a fixed command
            [tool, str(damaged), ".recover"],
            capture_output=True,
            timeout=RECOVER_TIMEOUT_S,
            check=False,
        )
        if dump.returncode != 0:
            log.warning("sqlite3 .recover failed on %s: %s", damaged, dump.stderr[:200])
            return None
        db = sqlite3.connect(target, isolation_level=None)
        try:
            db.executescript(dump.stdout.decode("utf-8", errors="replace"))
        finally:
            db.close()
    except (OSError, subprocess.SubprocessError, sqlite3.Error) as exc:
        log.warning("sqlite3 .recover failed on %s: %s", damaged, exc)
        return None
    return target


def _copy_rows(source: Path, fresh: sqlite3.Connection) -> None:
    """Every readable row of the known tables into the fresh database; rows already there
    (by primary key) are kept."""
    try:
        db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        # Lets SQLite read a file shorter than its header says (truncated): the pages that are
        # there are read, the missing ones fail one by one.
        db.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error as exc:
        log.warning("cannot open %s to recover from: %s", source, exc)
        return
    try:
        for table in RECOVERED_TABLES:
            try:
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            except sqlite3.Error:
                continue
            columns = [
                row[1] for row in fresh.execute(f"PRAGMA table_info({table})") if row[1] in have
            ]
            if not columns:
                continue
            names = ", ".join(columns)
            marks = ", ".join("?" * len(columns))
            for row in _readable_rows(db, table, names):
                try:
                    fresh.execute(
                        f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - our table and column names
                        row,
                    )
                except sqlite3.Error as exc:
                    # A garbled row (a value its CHECK refuses): that row is lost, not the rest.
                    log.warning("a row of %s could not be recovered: %s", table, exc)
    finally:
        db.close()


def _mend_header(copy: Path) -> None:
    """Give a copy whose first 100 bytes are garbled a plain header, so that its pages can be
    read: the page size is the first that lets SQLite read the schema."""
    with copy.open("rb") as f:
        if f.read(len(MAGIC)) == MAGIC:
            return
    for page_size in PAGE_SIZES:
        with copy.open("r+b") as f:
            f.write(_header(page_size))
        db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            db.execute("PRAGMA writable_schema=ON")
            if "readings" in _tables(db):
                log.warning("recovery: %s given a header for pages of %d bytes", copy, page_size)
                return
        except sqlite3.Error:
            pass
        finally:
            db.close()


def _header(page_size: int) -> bytes:
    """A database header (sqlite.org/fileformat.html, 1.3) for a file in WAL mode whose size
    and free list SQLite works out itself (size 0 means: the file's size)."""
    return (
        MAGIC
        + struct.pack(">HBBBBBB", page_size % 65536, 2, 2, 0, 64, 32, 32)
        + struct.pack(">IIIIIIIIIIII", 1, 0, 0, 0, 1, 4, 0, 0, 1, 0, 0, 0)
        + bytes(20)
        + struct.pack(">II", 0, sqlite3.sqlite_version_info[0] * 1_000_000)
    )


def _readable_rows(db: sqlite3.Connection, table: str, names: str) -> list[tuple[Any, ...]]:
    """The rows that can be read: forward until a damaged page, then backward to it."""
    rows: dict[int, tuple[Any, ...]] = {}
    for order in ("ASC", "DESC"):
        try:
            for rowid, *values in db.execute(
                f"SELECT rowid, {names} FROM {table} ORDER BY rowid {order}"  # noqa: S608 - our names
            ):
                if rowid in rows:
                    break
                rows[rowid] = tuple(values)
            else:
                if order == "ASC":
                    break  # read to the end without damage: no need to come back
        except sqlite3.Error:
            continue
    return list(rows.values())
