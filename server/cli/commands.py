"""The `gridwalk` command: migrate the database, load users and meters, assign routes, serve.

The database is the one DATABASE_URL names (through Settings). Only `db upgrade`, `demo` and
`serve` migrate it; the other commands refuse a database whose schema is not up to date.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine, make_url
from sqlmodel import Session

from common import clock
from common.i18n import N_
from server.audit import retention as track_retention
from server.catalog import accounts, assignments, imports
from server.cli.terminal import (
    DAY,
    OneLineErrors,
    console,
    error_line,
    fail,
    failing_clearly,
    require_schema,
    said,
    settings_or_fail,
    shown_url,
    unit_of_work,
)
from server.core import integrity, migrate, partitions
from server.core.config import Settings, dev_secret_refusal
from server.core.db import make_engine
from server.core.errors import Invalid
from server.demo import days
from server.demo import utility as demo
from server.demo.utility import LOCAL
from server.models import ROLES
from server.sync import epoch
from server.validation import queue as validation_queue
from server.validation import runner as validation

# rich_markup_mode=None: plain help text (rich's help shows flags as `--help <bool>`).
app = typer.Typer(
    cls=OneLineErrors,
    help="Gridwalk: meter-reading routes, repair jobs and their audit, for an electricity utility.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database schema (Alembic migrations).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")


# --- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to the latest schema (or to REVISION)."""
    settings = settings_or_fail()
    with failing_clearly():
        migrate.upgrade(settings.migrations_url, revision)
    console().print(f"Database {escape(shown_url(settings))} upgraded to {escape(revision)}.")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="Target revision; base drops every table.")
    ] = "base",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the database down to REVISION (default base: every table and its data dropped)."""
    settings = settings_or_fail()
    if not yes:
        typer.confirm(
            f"Downgrade {shown_url(settings)} to {revision}? Tables dropped on the "
            "way lose their data",
            abort=True,
        )
    with failing_clearly():
        migrate.downgrade(settings.migrations_url, revision)
    console().print(f"Database {escape(shown_url(settings))} downgraded to {escape(revision)}.")


# --- users, meters, assignments, devices ------------------------------------------------------


@app.command("create-user")
def create_user(
    username: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 8 characters (asked if not given).",
        ),
    ],
    grid: Annotated[
        str | None,
        typer.Option(help="An existing grid's code (see create-grid). A supervisor needs one."),
    ] = None,
    full_name: Annotated[str, typer.Option(help="The person's name.")] = "",
    phone: Annotated[
        str | None, typer.Option(help="A crew member's phone, for the call-centre agents.")
    ] = None,
) -> None:
    """Create a user with a role (a supervisor of a grid without a leader becomes its leader)."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        user = accounts.create_user(
            session,
            settings,
            username=username,
            password=password,
            role=role,
            grid_code=grid,
            full_name=full_name,
            phone=phone,
        )
        console().print(
            f"Created {escape(user.role)} [bold]{escape(user.username)}[/bold]"
            + (f" in grid {escape(grid)}." if grid else ".")
        )


@app.command("new-data-epoch")
def new_data_epoch() -> None:
    """After restoring the database from a backup: handhelds push again what they still hold."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        value = epoch.renew(session)
    console().print(
        f"New data epoch {value}. On its next sync each handheld pushes again the records it "
        "still holds and pulls its work from the start; each record is stored once."
    )


@app.command("create-grid")
def create_grid(
    code: Annotated[str, typer.Argument(help="The grid's code, such as GRID-01.")],
    name: Annotated[str, typer.Option(help="Its name, such as 滨江网格.")] = "",
) -> None:
    """Create a grid (网格); the meters' import also creates the grids its rows name."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        grid = accounts.create_grid(session, code=code, name=name)
        console().print(f"Created grid {escape(grid.code)} ({escape(grid.name)}).")


@app.command("import-meters")
def import_meters(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A CSV export of accounts and meters (UTF-8).",
        ),
    ],
) -> None:
    """Load accounts, routes and meters from a CSV file: every row, or none if any is bad.

    Runs as the tables' owner (GRIDWALK_MIGRATION_DATABASE_URL, when set), as `partitions` and
    `retention` do: a first load into an empty meters table then sets the meters' keys and
    indexes aside and builds them once at the end (imports.py), which the serving role may not."""
    settings = settings_or_fail()
    with unit_of_work(settings, as_owner=True) as session, file.open("rb") as stream:
        out = console()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeElapsedColumn(),
            console=out,
        ) as bar:
            shown = _ImportProgress(bar, file.name)
            try:
                report = imports.import_meters_csv(
                    session, stream, actor_id=None, progress=shown.read, writing=shown.writing
                )
            except Invalid as exc:
                bar.stop()
                if exc.code == "not_utf8":
                    raise fail(f"{file}: {exc.detail}") from None
                if exc.code != "invalid_csv":
                    raise
                _print_bad_rows(exc)
                raise typer.Exit(1) from None
            shown.written()
        table = Table("", "count", title=f"Imported {escape(file.name)}", title_justify="left")
        for key, value in report.as_dict().items():
            table.add_row(key.replace("_", " "), str(value))
        out.print(table)


class _ImportProgress:
    """Two lines of the import's progress bar: the file read (in MiB), then the database's
    steps (imports.WRITING_STEPS), which take most of a first load's time."""

    def __init__(self, bar: Progress, name: str):
        self.bar = bar
        self.reading = bar.add_task(
            said(N_("Reading {name}"), name=escape(name)), total=None, amount=""
        )
        self.steps: TaskID | None = None

    def read(self, done: int, total: int) -> None:
        mib = 1024 * 1024
        amount = f"{done / mib:.1f}/{total / mib:.1f} MiB"
        self.bar.update(self.reading, completed=done, total=total, amount=amount)

    def writing(self, step: str) -> None:
        count = len(imports.WRITING_STEPS)
        if self.steps is None:
            self.steps = self.bar.add_task("", total=count, amount="")
        done = imports.WRITING_STEPS.index(step)
        self.bar.update(
            self.steps,
            completed=done,
            description=said(N_("Writing to the database: {step}"), step=said(step)),
            amount=f"{done}/{count}",
        )

    def written(self) -> None:
        if self.steps is not None:
            count = len(imports.WRITING_STEPS)
            self.bar.update(
                self.steps,
                completed=count,
                description=said(N_("Written to the database")),
                amount=f"{count}/{count}",
            )


def _print_bad_rows(exc: Invalid) -> None:
    table = Table("line", "column", "error", title="Bad rows", title_justify="left")
    for error in exc.extra.get("errors", []):
        table.add_row(str(error["line"]), escape(error["column"] or ""), escape(error["error"]))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(table)
    err.print(f"[red]error:[/red] {escape(exc.detail)}")


@app.command()
def assign(
    route: Annotated[str, typer.Option(help="Route code, such as R-101.")],
    reader: Annotated[str, typer.Option(help="The reader's username.")],
    cycle: Annotated[str, typer.Option(help="Cycle code, such as 2026-11 (created if new).")],
    window_start: Annotated[
        date, typer.Option(**DAY, help="First day of the window (YYYY-MM-DD).")
    ],
    window_end: Annotated[date, typer.Option(**DAY, help="Last day of the window (YYYY-MM-DD).")],
) -> None:
    """Give a route to a reader for a cycle; giving it again moves it or changes its window."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        assignment = assignments.assign_route(
            session,
            route_code=route,
            reader=reader,
            cycle=cycle,
            window_start=window_start,
            window_end=window_end,
        )
        console().print(
            f"Route {escape(route)} assigned to {escape(reader)} for cycle "
            f"{escape(cycle)}: {assignment.window_start} to {assignment.window_end}."
        )


@app.command("revoke-device")
def revoke_device(
    device_id: Annotated[str, typer.Argument(help="The handheld's id, as it logged in.")],
) -> None:
    """Revoke a handheld: its tokens stop working at once and it cannot log in again."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        device = accounts.revoke_device(session, device_id=device_id, actor_id=None)
        console().print(f"Device {escape(device.id)} revoked at {device.revoked_at}.")


# --- track points: partitions and retention ---------------------------------------------------


@contextmanager
def _owner_engine(settings: Settings) -> Iterator[Engine]:
    """The tables' owner's engine (the migrations' URL): partitions are DDL, which the serving
    role may not do. The schema is checked first."""
    with failing_clearly():
        engine = make_engine(settings.migrations_url)
        try:
            require_schema(engine, settings)
            yield engine
        finally:
            engine.dispose()


def _made_ahead(engine: Engine, ahead: int) -> partitions.Made | None:
    """This month's track-point partition and the next `ahead` months' (PostgreSQL); None on
    SQLite, which has one plain table."""
    with engine.begin() as conn:
        if not partitions.is_partitioned(conn):
            return None
        return partitions.ensure_ahead(conn, clock.now(), ahead)


def _say_made(made: partitions.Made | None) -> None:
    if made is None:
        console().print(said(N_("SQLite keeps the track points in one table: no partitions.")))
        return
    console().print(
        said(
            N_(
                "Track-point partitions: {created} made ({names}), {existing} already there; "
                "{moved} points moved out of the default partition."
            ),
            created=len(made.created),
            names=", ".join(m.name for m in made.created) or "-",
            existing=made.existing,
            moved=made.moved,
        )
    )


@app.command(
    "partitions",
    help=said(
        N_(
            "PostgreSQL: make the track points' monthly partitions of this month and the next "
            "N months (those that exist are left alone), and a partition for every earlier "
            "month whose points landed in the default partition (they move into it). The "
            "server does it at start; run it monthly (cron) for a server that runs for months. "
            "Nothing to do on SQLite."
        )
    ),
)
def make_partitions(
    ahead: Annotated[
        int, typer.Option(min=0, max=120, help=said(N_("How many months after this one.")))
    ] = 3,
) -> None:
    settings = settings_or_fail()
    with _owner_engine(settings) as engine:
        _say_made(_made_ahead(engine, ahead))


@app.command(
    "retention",
    help=said(
        N_(
            "Remove the track points of whole months older than M months (PostgreSQL: their "
            "partitions detached and dropped; SQLite: their rows deleted in batches). Readings, "
            "flags and reviews are never removed, and each reading keeps its own GPS fix. A "
            "month is kept whole while it holds the track of an assignment whose audit is not "
            "settled: open, waiting for validation, with a flag not yet reviewed or rejected "
            "(a disputed reading), or with a re-read order still open."
        )
    ),
)
def retention(
    keep_months: Annotated[
        int,
        typer.Option(
            min=1, help=said(N_("Months kept before the current one (12: a year and this month)."))
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=said(N_("Say what would go; remove nothing.")))
    ] = False,
) -> None:
    settings = settings_or_fail()
    with _owner_engine(settings) as engine:
        outcome = track_retention.apply(
            engine, now=clock.now(), keep_months=keep_months, dry_run=dry_run
        )
    out = console()
    for month in outcome.months:
        label = f"{month.month.first:%Y-%m}"
        if month.kept_for:
            out.print(
                said(
                    N_(
                        "{month}: {points} points kept: the audit of assignment(s) {ids} is not "
                        "settled."
                    ),
                    month=label,
                    points=month.points,
                    ids=", ".join(map(str, month.kept_for)),
                )
            )
        elif dry_run:
            out.print(
                said(
                    N_("{month}: {points} points would be removed."),
                    month=label,
                    points=month.points,
                )
            )
        else:
            out.print(
                said(N_("{month}: {points} points removed."), month=label, points=month.points)
            )
    summary = (
        N_(
            "Dry run, nothing removed: points from {cutoff} are kept; {removed} month(s) "
            "would go, {kept} kept for unsettled audits."
        )
        if dry_run
        else N_(
            "Points from {cutoff} are kept; {removed} month(s) removed, {kept} kept for "
            "unsettled audits."
        )
    )
    out.print(
        said(
            summary,
            cutoff=outcome.cutoff.isoformat(),
            removed=len(outcome.removed),
            kept=len(outcome.kept),
        )
    )


# --- demo and serve ---------------------------------------------------------------------------


@app.command("demo")
def load_demo(
    today: Annotated[
        date | None,
        typer.Option(
            **DAY,
            help="Load the demo as if today were this day (default: today, in UTC+8).",
        ),
    ] = None,
) -> None:
    """Migrate the database and load a small demo utility; print its users' credentials."""
    settings = settings_or_fail()
    with unit_of_work(settings, upgrade=True) as session:
        if today is None:
            credentials = demo.load_demo(session, settings)
        else:
            # The whole load (its walks, its pushes' arrival, the outage's times) is dated from
            # that day, at this time of day: the one clock is set, not each date.
            local_now = clock.now().astimezone(LOCAL)
            with clock.clock.frozen_at(datetime.combine(today, local_now.timetz())):
                credentials = demo.load_demo(session, settings)
    out = console()
    state = "loaded" if credentials.created else "was already loaded"
    table = Table(
        "username", "password", "role", title=f"The demo {state}: its users", title_justify="left"
    )
    for user in credentials.users:
        table.add_row(user.username, user.password, user.role)
    out.print(table)
    out.print(
        "Start the server with `gridwalk serve` (--host, --port to choose where): "
        "it prints the addresses to open."
    )


@app.command("close-due")
def close_due(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes closing side by side (judging a route-day is CPU work; default: "
            "one per core).",
        ),
    ] = os.cpu_count() or 1,
) -> None:
    """Close every assignment whose window has ended; what is unread is flagged `missed`.

    The server also does it by itself every few minutes (GRIDWALK_CLOSE_DUE_EVERY_MINUTES)."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        # Each assignment is closed in transactions of its own: no lock held across the cycle,
        # and a run cut short is taken up by the next.
        closed = validation.close_due_assignments(
            _engine_of(session), settings=settings, now=clock.now(), workers=workers
        )
    console().print(f"Closed {len(closed)} assignment(s): {', '.join(map(str, closed)) or '-'}")


def _engine_of(session: Session) -> Engine:
    """The command's engine, checked and migrated by unit_of_work, for work done in several
    transactions of its own."""
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    return bind


@app.command("validate-pending")
def validate_pending() -> None:
    """Validate every assignment waiting in the validation queue, once, and exit.

    The server does it by itself right after each push (GRIDWALK_VALIDATION_WORKERS); this is
    for a server run without workers, or to see what is stuck: a failing assignment is tried
    again later (with a growing wait) and named here."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        drained = validation_queue.drain(_engine_of(session), settings)
        stuck = validation_queue.failing(session)
    console().print(
        f"Validated {drained.validated} assignment(s); {drained.failed} failed this time."
    )
    for item in stuck:
        console().print(
            f"assignment {item.assignment_id}: {item.attempts} failed attempt(s), next at "
            f"{item.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC: {escape(item.last_error or '')}"
        )


@app.command()
def verify() -> None:
    """Check that nothing was changed behind Gridwalk's back: walk the ledger, re-hash every
    reading and admin log entry. Exit 0 when intact; 1, naming what is wrong, when not."""
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        verdict = integrity.verify(session)
    counted = (
        f"{verdict.entries} ledger entries, {verdict.readings} readings, "
        f"{verdict.admin_logs} admin log entries"
    )
    if verdict.intact:
        console().print(f"Intact: {counted}.")
        return
    for problem in verdict.problems:
        error_line(problem)
    raise fail(f"TAMPERED: {len(verdict.problems)} problem(s) in {counted}", code=1)


@app.command("walk-gpx")
def walk_gpx(
    route: Annotated[str, typer.Argument(help="The route to walk, e.g. R-101.")],
    out: Annotated[Path, typer.Argument(help="The GPX file to write.")],
    seed: Annotated[int, typer.Option(help="Another seed, another walk.")] = 1,
) -> None:
    """Write a GPX walk along a route's meters, starting now, to replay on a desktop handheld.

    Replay it with: gridwalk-handheld --replay FILE.gpx."""
    if not out.parent.is_dir():
        raise fail(f"cannot write {out}: the folder {out.parent} does not exist")
    if out.is_dir():
        raise fail(f"cannot write {out}: it is a folder")
    settings = settings_or_fail()
    with unit_of_work(settings) as session:
        meters = demo.route_meters(session, route_code=route)
    try:
        out.write_text(days.walk_gpx(meters, clock.now(), seed=seed))
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}") from None
    console().print(f"Wrote a walk of {len(meters)} meters of {escape(route)} to {out}.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port, each with its own validation workers and "
            "database connections.",
        ),
    ] = 1,
) -> None:
    """Migrate the database, then serve the API, the audit page and the agents' board."""
    import uvicorn

    settings = settings_or_fail()
    refusal = dev_secret_refusal(settings, host)
    if refusal is not None:
        raise fail(refusal)
    with failing_clearly():
        migrate.upgrade(settings.migrations_url)
        # PostgreSQL: the partitions of the months ahead, so points rarely land in the default.
        engine = make_engine(settings.migrations_url)
        try:
            made = _made_ahead(engine, settings.partition_months_ahead)
        finally:
            engine.dispose()
        if made is not None and made.created:
            _say_made(made)
    if workers > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        # bench/ingest: six handhelds pushing to two processes on SQLite stored a fifth of
        # what one process stores, and waited seconds: across processes, SQLite's writers
        # poll for its one write lock (within one, they take turns: db.sqlite_write_turn).
        console().print(
            said(
                N_(
                    "SQLite has one writer: several server processes wait for it in turn, and "
                    "push slower than one. Use --workers with PostgreSQL."
                )
            ),
            style="yellow",
        )
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{'127.0.0.1' if host == '0.0.0.0' else shown}:{port}"  # noqa: S104
    console().print(
        f"Gridwalk on {base}: API docs {base}/docs, supervisors' audit {base}/audit, "
        f"agents' outage board {base}/outages"
    )
    # Several processes share nothing but the database: pushes are idempotent under its keys,
    # and the validation queue is claimed with SKIP LOCKED (PostgreSQL) or under SQLite's one
    # writer (tests/server/test_several_workers.py).
    uvicorn.run("server.main:create_app", factory=True, host=host, port=port, workers=workers)
