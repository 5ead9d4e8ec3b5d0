"""One Alembic history: upgrades an empty database to head, back to base, and matches the models."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from server.core import migrate
from server.core.db import make_engine
from tests.server.test_cli import gridwalk


def test_models_and_migrations_agree(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    migrate.downgrade(db_url, "base")
    engine = make_engine(db_url)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(db_url)
    engine.dispose()
    engine = make_engine(db_url)
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM change_counter WHERE id = 1")).scalar() == 0
    engine.dispose()


def one_reading_by_sql(engine: Engine) -> None:
    """A grid, a reader, a route of one meter, its assignment and one reading, in raw SQL (the
    models may be ahead of the schema a test migrated to)."""
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO grids (code, name, created_at) VALUES ('G', 'G', CURRENT_TIMESTAMP)")
        )
        conn.execute(
            text(
                "INSERT INTO users (username, full_name, password_hash, role, active, created_at) "
                "VALUES ('r', '', 'x', 'reader', true, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO devices (id, first_seen_at, last_seen_at) "
                "VALUES ('d1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO accounts (account_no, customer_name, address, active, created_at, "
                "updated_at) VALUES ('A1', 'n', 'a', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text("INSERT INTO routes (code, name, created_at) VALUES ('R', '', CURRENT_TIMESTAMP)")
        )
        conn.execute(
            text(
                "INSERT INTO meters (meter_no, account_id, route_id, sequence, lat, lon, digits, "
                "multiplier, change_seq, updated_at) VALUES ('M1', 1, 1, 1, 30, 120, 6, 1, 0, "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(text("INSERT INTO cycles (code, created_at) VALUES ('C', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO assignments (route_id, cycle_id, reader_id, window_start, window_end, "
                "status, change_seq, created_at) VALUES (1, 1, 1, '2026-11-01', '2026-11-05', "
                "'open', 0, CURRENT_TIMESTAMP)"
            )
        )
        # SQLite keeps a UUID as 32 hex digits, PostgreSQL as its own type.
        reading_id = "0" * 31 + "1" if engine.dialect.name == "sqlite" else str(uuid.UUID(int=1))
        conn.execute(
            text(
                "INSERT INTO readings (id, assignment_id, meter_id, value, read_at, confirmed_at, "
                "user_id, device_id, received_at, content_hash) VALUES "
                "(:id, 1, 1, 5, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 'd1', CURRENT_TIMESTAMP, "
                "'h')"
            ),
            {"id": reading_id},
        )


def test_the_database_refuses_to_change_or_delete_a_reading(db_url: str) -> None:
    """Confirmed means locked for every role: even raw SQL cannot edit a reading."""
    engine = make_engine(db_url)
    one_reading_by_sql(engine)
    for statement in ("UPDATE readings SET value = 6", "DELETE FROM readings"):
        with pytest.raises(DBAPIError, match="readings are locked"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM readings")).scalar() == 5
    engine.dispose()


def test_an_older_databases_assignments_are_queued_by_0013_and_judged_by_validate_pending(
    db_url: str,
) -> None:
    """Assignment verdicts are stored by the validation: a database from before them has none,
    so migration 0013 queues every assignment, and draining the queue judges each."""
    migrate.downgrade(db_url, "0012")
    engine = make_engine(db_url)
    one_reading_by_sql(engine)
    migrate.upgrade(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT assignment_id FROM validation_work")).all() == [(1,)]
        assert conn.execute(text("SELECT count(*) FROM assignment_verdicts")).scalar() == 0
    result = gridwalk(db_url, "validate-pending")
    assert result.exit_code == 0, result.output
    assert "Validated 1 assignment(s); 0 failed this time." in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM validation_work")).scalar() == 0
        code, walked = conn.execute(
            text("SELECT code, walked_m FROM assignment_verdicts WHERE assignment_id = 1")
        ).one()
    # One meter read, no track: what the rules say of it.
    assert (code, walked) == ("no_track", 0)
    engine.dispose()
