"""The one place configuration is read: environment variables prefixed GRIDWALK_ or DATABASE_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = PROJECT_DIR / "var" / "gridwalk.db"
DEV_SECRET = "dev-only-secret-change-me-dev-only-secret"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDWALK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        validation_alias=AliasChoices("DATABASE_URL", "GRIDWALK_DATABASE_URL"),
    )
    secret_key: str = DEV_SECRET
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    # argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile).
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    # A reader-day of track points gzip-compresses to tens of kB; these bound a hostile body.
    max_push_bytes: int = 4 * 1024 * 1024
    max_push_inflated_bytes: int = 32 * 1024 * 1024
    max_import_bytes: int = 64 * 1024 * 1024
    pull_page_size: int = 500
    # Oldest app version still served; older apps are told to update.
    min_app_version: str = "0.1.0"

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_development(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError(
                "GRIDWALK_SECRET_KEY must be set to a secret of your own in production"
            )
        if len(self.secret_key) < 32:
            raise ValueError("GRIDWALK_SECRET_KEY must be at least 32 characters")
        return self
