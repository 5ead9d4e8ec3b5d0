"""Timestamps come back from either database aware and in UTC (server/core/db.py UTCDateTime):
SQLite keeps them as text and they are parsed with their zone; PostgreSQL sessions are pinned
to UTC by make_engine, so psycopg hands them back in UTC without a Python call per value, even
where the server, the role or the caller asked for another zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import text
from sqlmodel import Session, select

from server.core.db import make_engine
from server.models import Grid, User

SHANGHAI = timezone(timedelta(hours=8))


def test_a_timestamp_comes_back_in_utc_whatever_zone_the_session_asked_for(db_url: str) -> None:
    asked = {"options": "-c TimeZone=Asia/Shanghai"} if db_url.startswith("postgresql") else {}
    engine = make_engine(db_url, connect_args=asked) if asked else make_engine(db_url)
    written = datetime(2026, 3, 1, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC, another day in China
    try:
        with Session(engine) as session:
            grid = Grid(code="G-T", name="G-T")
            session.add(grid)
            session.flush()
            session.add(
                User(
                    username="timekeeper",
                    password_hash="x",
                    role="reader",
                    grid_id=grid.id,
                    created_at=written,
                )
            )
            session.commit()
            if asked:
                zone = session.connection().execute(text("SHOW TimeZone")).scalar_one()
                assert zone == "UTC"
            read = session.exec(select(User.created_at).where(User.username == "timekeeper")).one()
        assert read == written
        assert read.tzinfo is UTC
        assert (read.date(), read.hour) == (written.date(), 15)
    finally:
        engine.dispose()
