"""What every bench does to its database: start from an empty, migrated one, and settings that
hash passwords cheaply (the benches time the server's work, not argon2's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine


def fresh(url: str) -> None:
    """Migrate `url`; on PostgreSQL, after dropping everything in it (a bench's own database:
    never point one at a database you keep)."""
    if url.startswith("postgresql"):
        reset = make_engine(url)
        with reset.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        reset.dispose()
    migrate.upgrade(url)


def bench_settings(url: str, **overrides: Any) -> Settings:
    """The server's settings for a bench on `url`: cheap password hashing, no closer running."""
    return Settings(
        environment="test",
        database_url=url,
        password_time_cost=1,
        password_memory_kib=1024,
        close_due_every_minutes=0,
        **overrides,
    )
