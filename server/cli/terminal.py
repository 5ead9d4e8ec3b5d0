"""How every `gridwalk` command talks and works: one line for a bad argument or a refusal
(never a traceback), days parsed as days, the configured database checked, and each command
one unit of work (committed when it ends well)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import typer
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from typer.core import TyperGroup

from common.i18n import choose_language, say, translations
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.core.errors import Problem


class OneLineErrors(TyperGroup):
    """A bad argument gets one line naming it and exit code 2, not a usage box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.TyperException as exc:  # typer's own click: a usage error, a bad value
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            error_line(f"{exc.format_message()}{where}")
            result = exc.exit_code
        except typer.Abort:
            error_line("aborted: nothing was changed")
            result = 1
        if standalone_mode:
            sys.exit(result or 0)
        return result


def parse_day(value: str | date) -> date:
    """A calendar day written YYYY-MM-DD; an impossible one (2026-02-30) is named as such."""
    if isinstance(value, date):
        return value
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise typer.BadParameter(f"{value!r} is not a day written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a day of the calendar ({exc})") from None


DAY = {"parser": parse_day, "metavar": "YYYY-MM-DD"}


def error_line(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(message)}"
    )


def said(message: str, **params: Any) -> str:
    """A catalog message (marked N_) in the language of the machine's locale (LANGUAGE,
    LC_ALL, LANG; Chinese when it names neither), with its values filled in."""
    return say(message, params, translations(choose_language()).gettext)


def console() -> Console:
    # Made per call, so output goes to whatever stdout is now (a terminal, a pipe, a test).
    return Console(highlight=False, soft_wrap=True)


def fail(message: str, *, code: int = 2) -> typer.Exit:
    # One line however long, so it can be grepped and read whole in a log.
    error_line(message)
    return typer.Exit(code)


@contextmanager
def failing_clearly() -> Iterator[None]:
    """Turn a refusal of the service into one red line and exit code 2, not a traceback."""
    try:
        yield
    except Problem as exc:
        raise fail(exc.detail) from None
    except OperationalError as exc:
        raise fail(f"the database refused: {str(exc.orig).strip()}") from None
    except (CommandError, RevisionError) as exc:
        # Alembic's word on a revision it does not know, without its traceback.
        raise fail(f"migration: {exc}") from None


def settings_or_fail() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        errors = "; ".join(str(e["msg"]) for e in exc.errors())
        raise fail(f"configuration: {errors}") from None


def shown_url(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


def require_schema(engine: Engine, settings: Settings) -> None:
    """Refuse, with the command that fixes it, a database without the current schema."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        assert url.database is not None
        if not Path(url.database).exists():
            raise fail(f"no database at {url.database}: run `gridwalk db upgrade` first")
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except OperationalError as exc:
        raise fail(
            f"cannot reach the database {shown_url(settings)}: {str(exc.orig).strip()}"
        ) from None
    script = ScriptDirectory.from_config(migrate.alembic_config(settings.database_url))
    heads = set(script.get_heads())
    if not current:
        raise fail(
            f"the database {shown_url(settings)} has no Gridwalk schema: "
            "run `gridwalk db upgrade` first"
        )
    if current != heads:
        raise fail(
            f"the database schema is at {', '.join(sorted(current))} but this Gridwalk "
            f"needs {', '.join(sorted(heads))}: run `gridwalk db upgrade` first"
        )


@contextmanager
def unit_of_work(
    settings: Settings, *, upgrade: bool = False, as_owner: bool = False
) -> Iterator[Session]:
    """A session on the configured database, migrated first if `upgrade`, else checked; as the
    tables' owner (the migrations' URL) if `as_owner`."""
    with failing_clearly():
        if upgrade:
            migrate.upgrade(settings.migrations_url)
        engine = make_engine(settings.migrations_url if as_owner else settings.database_url)
        try:
            if not upgrade:
                require_schema(engine, settings)
            # The command is the unit of work: committed when it ends well, else rolled back.
            with Session(engine, expire_on_commit=False) as session:
                yield session
                session.commit()
        finally:
            engine.dispose()
