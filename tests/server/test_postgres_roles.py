"""PostgreSQL's two roles (scripts/test-postgres.sh, README "PostgreSQL in production: two
roles"): the app serves as a role that owns no table, so its credentials cannot turn off the
locks that keep readings, the ledger and the admin log append-only; migrations run as the owner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from server.catalog import imports
from server.catalog.meter_csv import REQUIRED_COLUMNS
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from tests.conftest import IN_CI
from tests.server.test_cli import gridwalk
from tests.server.test_ledger import a_day_of_work, chain

TEST_APP_DATABASE_URL = os.environ.get("TEST_APP_DATABASE_URL")

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def app_url(db_url: str) -> str:
    """The app role's URL to the test database (db_url is the owner's)."""
    if not TEST_APP_DATABASE_URL:
        if IN_CI:
            pytest.fail("CI=true but TEST_APP_DATABASE_URL is not set (`make test` sets it)")
        pytest.skip("TEST_APP_DATABASE_URL not set (scripts/test-postgres.sh --app prints it)")
    return TEST_APP_DATABASE_URL


@pytest.fixture
def app_engine(app_url: str) -> Iterator[Engine]:
    engine = make_engine(app_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE readings DISABLE TRIGGER ALL",
        "ALTER TABLE readings DISABLE TRIGGER USER",
        "ALTER TABLE ledger DISABLE TRIGGER ledger_locked",
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "SET session_replication_role = replica",
        "TRUNCATE readings",
        "TRUNCATE ledger",
        "DROP TRIGGER readings_locked ON readings",
    ],
)
def test_the_app_role_cannot_turn_the_locks_off(app_engine: Engine, statement: str) -> None:
    with (
        pytest.raises(DBAPIError, match=r"must be owner|permission denied"),
        app_engine.begin() as conn,
    ):
        conn.execute(text(statement))


def test_the_app_role_serves_a_day_of_work_and_verify_finds_it_intact(
    db_url: str, app_url: str, app_engine: Engine, session: Session, settings: Settings
) -> None:
    as_app = settings.model_copy(update={"database_url": app_url, "migration_database_url": db_url})
    with TestClient(create_app(as_app, app_engine)) as client:
        a_day_of_work(session, settings, client)
    assert len(chain(session)) > 5
    with app_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT current_user")).scalar_one()
            != conn.execute(
                text("SELECT tableowner FROM pg_tables WHERE tablename = 'readings'")
            ).scalar_one()
        )
    result = gridwalk(app_url, "verify")
    assert result.exit_code == 0, result.output


def test_migrations_run_as_the_owner_while_the_app_serves_as_its_role(
    db_url: str, app_url: str
) -> None:
    refused = gridwalk(app_url, "db", "downgrade", "0003", "--yes")
    assert refused.exit_code != 0  # the app may not drop what it does not own
    result = gridwalk(
        app_url, "db", "downgrade", "0003", "--yes", env={"GRIDWALK_MIGRATION_DATABASE_URL": db_url}
    )
    assert result.exit_code == 0, result.output
    result = gridwalk(app_url, "db", "upgrade", env={"GRIDWALK_MIGRATION_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert gridwalk(app_url, "verify").exit_code == 0  # the app reads what the owner made


def test_the_app_role_makes_a_first_load_of_meters_with_the_foreign_keys_checked_per_row(
    app_engine: Engine, session: Session
) -> None:
    """The app role may not alter a table: its first load keeps the constraints throughout."""
    rows = [f"A{i // 2},Name {i // 2},{i // 2} Road,M{i},30.27,120.15,R-A,{i}" for i in range(6)]
    with Session(app_engine) as app_session:
        report = imports.import_meters_csv(
            app_session, "\n".join([",".join(REQUIRED_COLUMNS), *rows]) + "\n", actor_id=None
        )
        app_session.commit()

    assert report.meters_created == 6
    assert report.accounts_created == 3
    keys = text(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'meters'::regclass AND contype = 'f'"
    )
    assert session.execute(keys).scalar_one() == 2


def test_the_import_command_runs_as_the_owner_and_sets_the_keys_aside_on_a_first_load(
    db_url: str, app_url: str, session: Session, tmp_path: Path
) -> None:
    """`gridwalk import-meters` on a server configured with both roles imports as the owner
    (as `partitions` and `retention` do): its first load drops the meters' foreign keys and
    makes them again (new constraints), which the app role alone could not."""
    keys = text(
        "SELECT conname, oid FROM pg_constraint WHERE conrelid = 'meters'::regclass "
        "AND contype = 'f' ORDER BY conname"
    )
    before = session.execute(keys).all()
    session.commit()
    rows = [f"A{i // 2},Name {i // 2},{i // 2} Road,M{i},30.27,120.15,R-A,{i}" for i in range(6)]
    csv = tmp_path / "meters.csv"
    csv.write_text("\n".join([",".join(REQUIRED_COLUMNS), *rows]) + "\n", encoding="utf-8")
    result = gridwalk(
        app_url, "import-meters", str(csv), env={"GRIDWALK_MIGRATION_DATABASE_URL": db_url}
    )
    assert result.exit_code == 0, result.output
    after = session.execute(keys).all()
    assert [name for name, _ in after] == [name for name, _ in before]  # the same keys, made anew
    assert {oid for _, oid in after}.isdisjoint(oid for _, oid in before)
    assert session.execute(text("SELECT count(*) FROM meters")).scalar_one() == 6
