"""The one place configuration is read: environment variables prefixed GRIDWALK_ or DATABASE_URL."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.rules.facts import Thresholds

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = PROJECT_DIR / "var" / "gridwalk.db"
_RULES = Thresholds()
DEV_SECRET = "dev-only-secret-change-me-dev-only-secret"  # noqa: S105 - refused outside development


def is_loopback(host: str) -> bool:
    """Is `host` (a name or an address to listen on) reachable from this machine only?"""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another name, or 0.0.0.0/:: (every address): reachable from outside


def dev_secret_refusal(settings: Settings, host: str) -> str | None:
    """Why the server must not listen on `host` with these settings, or None if it may: the
    development secret is public, so anyone who can reach the server could forge tokens."""
    if settings.secret_key != DEV_SECRET or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} with the development secret: anyone could forge a "
        "login; set GRIDWALK_SECRET_KEY to a secret of your own (at least 32 characters), "
        "or listen on 127.0.0.1"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDWALK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        validation_alias=AliasChoices("DATABASE_URL", "GRIDWALK_DATABASE_URL"),
    )
    # The URL migrations run with: on PostgreSQL in production the tables' owner, while the app
    # serves as a role that does not own them and so cannot turn the append-only locks off
    # (README, "PostgreSQL in production: two roles"). Unset: database_url, one URL for both.
    migration_database_url: str | None = None
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
    # Answers at least this long are gzipped for a client that accepts it (a pull of a route
    # shrinks ~9x); below it the gzip header and the CPU cost more than the bytes saved.
    gzip_min_bytes: int = 500
    pull_page_size: int = 500
    # Back-pressure. Each admitted API request holds at most one database connection, so the
    # requests let in at once (pushes plus the rest) never outnumber the pool: beyond them the
    # server answers 503 with Retry-After at once, instead of queueing requests that each hold
    # a worker thread while they wait for a connection (which is how it once stopped answering).
    db_pool_size: int = 10
    db_max_overflow: int = 6
    # How long a request waits for a pooled connection before it is answered 503 (busy).
    db_pool_timeout_s: float = 5.0
    # SQLite: how long a writer waits for the write lock before it is answered 503 (busy).
    sqlite_busy_timeout_s: float = 15.0
    max_inflight_pushes: int = 8
    max_inflight_requests: int = 6
    # What a 503 tells the client to wait: busy (overloaded), or the database unreachable.
    busy_retry_after_s: int = 5
    db_down_retry_after_s: int = 15
    # How often the server closes assignments whose window has ended (0: never, e.g. in tests
    # that need a past window open); closing validates them, so missed meters get flagged.
    close_due_every_minutes: float = 10.0
    # PostgreSQL: `gridwalk serve` makes the track points' partitions of this month and this
    # many after it at start (server/core/partitions.py; `gridwalk partitions` does it by hand).
    partition_months_ahead: int = Field(default=3, ge=0, le=120)
    # The validation queue (server/validation/queue.py). A push stores and answers; validation
    # runs right after, in `validation_workers` threads of the server process (0: none, e.g.
    # when `gridwalk validate-pending` is run by hand or another process drains the queue),
    # woken after each push and every `validation_poll_s` seconds. `validation_in_request`
    # drains the queue at the end of each push request instead, after its commit (the tests:
    # flags are there when the answer is, with no worker thread racing them). A failed
    # validation is tried again after `validation_retry_s`, doubling up to
    # `validation_retry_max_s`; a claim older than `validation_claim_lease_s` is a crashed
    # worker's and is taken again. Woken by a push, a worker first waits for a lull in pushes
    # (none for `validation_settle_s`), never longer than `validation_settle_max_s`: the
    # workers are threads of the process that answers the pushes, sharing its one interpreter
    # lock, so a burst of pushes is stored at speed and its assignments validated once after it
    # (pushes of one assignment in the burst coalesce into one validation), with flags at most
    # that much later.
    # The interpreter's thread switch interval while the server runs (Python's default is 5 ms).
    # A request thread spends most of a push waiting on the database; each time a statement
    # returns it must win the interpreter lock back from a thread busy in Python, which holds it
    # for up to this long: with ~20 statements a push and six pushes at once, 5 ms cost a push
    # more than its own work (bench/ingest.py: p99 2.4 s at 5 ms, 1.1 s at 0.5 ms).
    thread_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)
    validation_workers: int = Field(default=1, ge=0)
    validation_settle_s: float = Field(default=0.25, ge=0)
    validation_settle_max_s: float = Field(default=5.0, ge=0)
    validation_poll_s: float = Field(default=5.0, gt=0)
    validation_in_request: bool = False
    validation_retry_s: float = Field(default=30.0, gt=0)
    validation_retry_max_s: float = Field(default=3600.0, gt=0)
    validation_claim_lease_s: float = Field(default=600.0, gt=0)
    # Repair response commitments (故障抢修): arrive within, restore within, per urgency.
    job_urgent_response_minutes: float = 30
    job_urgent_restore_minutes: float = 240
    job_normal_response_minutes: float = 120
    job_normal_restore_minutes: float = 1440
    # An outage board question by position matches a job cutting off an account whose meter is
    # this close to the point asked about (an address is a house, not a meter box).
    outage_point_match_m: float = 150
    # A restored outage stays in the board's answers this long, as "restored at 08:06": the
    # caller whose power is still off is told it is their own installation, not "no outage".
    outage_restored_keep_hours: float = 24
    # Restoration estimated from history: from the last this-many finished jobs of the same kind
    # and urgency; with fewer than min_jobs the answer says there are too few rather than guess.
    outage_history_jobs: int = 200
    outage_history_min_jobs: int = 5
    # The range given around the median: the middle share of past jobs (0.8: 10th-90th pct).
    outage_history_share: float = 0.8
    # The most customers an address search answers with (the agent narrows as they type).
    outage_address_matches: int = 20
    # Login rate limit: failed logins within the window, counted per user name (known or not,
    # alike) and per client address; beyond them a login is refused 429 until the oldest
    # counted failure leaves the window. A successful login clears the user name's count.
    login_max_failures_per_username: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window_minutes: float = 15
    # Oldest app version still served; older apps are told to update.
    min_app_version: str = "0.1.0"
    # Base-map tiles for the audit page, e.g. https://tile.example.org/{z}/{x}/{y}.png (a
    # company's own tile server: desks may have no internet). Empty: no base map; the page
    # still draws the track and the meters on a blank background.
    map_tile_url: str = ""
    map_tile_attribution: str = ""
    # Or an MBTiles file of the utility's base map (a path): Gridwalk then serves its tiles
    # itself at /tiles/{z}/{x}/{y}.png and the page uses them (server/web/tiles.py).
    map_mbtiles: str = ""
    # The zone the desk pages show times in (an IANA name, for the browser's Intl), named on
    # the page: the call centre and the crews may not sit in the zone of the agent's computer.
    desk_time_zone: str = "Asia/Shanghai"

    # Route validation: the thresholds of common/rules/'s rules (meanings and defaults
    # are documented on its Thresholds), and the offset of the local time in which a cycle's
    # window dates are meant (UTC+8, China Standard Time).
    validation_presence_radius_m: float = _RULES.presence_radius_m
    validation_max_fix_age_s: float = _RULES.max_fix_age_s
    validation_max_fix_accuracy_m: float = _RULES.max_fix_accuracy_m
    validation_min_credited_accuracy_m: float = _RULES.min_credited_accuracy_m
    validation_grey_zone_m: float = _RULES.grey_zone_m
    validation_min_dwell_s: float = _RULES.min_dwell_s
    validation_learned_min_readings: int = _RULES.learned_min_readings
    validation_track_window_s: float = _RULES.track_window_s
    validation_default_track_accuracy_m: float = _RULES.default_track_accuracy_m
    validation_max_speed_kmh: float = _RULES.max_speed_kmh
    validation_min_work_interval_s: float = _RULES.min_work_interval_s
    validation_distinct_place_m: float = _RULES.distinct_place_m
    validation_clock_skew_tolerance_s: float = _RULES.clock_skew_tolerance_s
    validation_push_transit_s: float = _RULES.push_transit_s
    validation_rollover_fraction: float = _RULES.rollover_fraction
    validation_order_inversion_fraction: float = _RULES.order_inversion_fraction
    validation_order_min_readings: int = _RULES.order_min_readings
    validation_min_judged_interval_s: float = _RULES.min_judged_interval_s
    validation_network_accuracy_floor_m: float = _RULES.network_accuracy_floor_m
    validation_spike_m: float = _RULES.spike_m
    validation_stationary_radius_m: float = _RULES.stationary_radius_m
    validation_replay_lookback_days: int = _RULES.replay_lookback_days
    validation_replay_grid_deg: float = _RULES.replay_grid_deg
    validation_replay_run_steps: int = _RULES.replay_run_steps
    validation_replay_tolerance_deg: float = _RULES.replay_tolerance_deg
    validation_replay_min_points: int = _RULES.replay_min_points
    validation_replay_min_share: float = _RULES.replay_min_share
    validation_on_meter_m: float = _RULES.on_meter_m
    validation_on_meter_min_readings: int = _RULES.on_meter_min_readings
    validation_mock_providers: tuple[str, ...] = _RULES.mock_providers
    validation_window_utc_offset_minutes: int = 8 * 60

    @property
    def migrations_url(self) -> str:
        """The URL migrations run with (the tables' owner)."""
        return self.migration_database_url or self.database_url

    def thresholds(self) -> Thresholds:
        """The validation rules' thresholds, as configured."""
        return Thresholds(
            **{
                f.name: getattr(self, f"validation_{f.name}")
                for f in dataclasses.fields(Thresholds)
            }
        )

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_development(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError(
                "GRIDWALK_SECRET_KEY must be set to a secret of your own in production"
            )
        if len(self.secret_key) < 32:
            raise ValueError("GRIDWALK_SECRET_KEY must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _admit_no_more_than_the_pool_holds(self) -> Settings:
        # One connection is kept for the background closer of due assignments, one for each
        # validation worker.
        admitted = self.max_inflight_pushes + self.max_inflight_requests
        if min(self.max_inflight_pushes, self.max_inflight_requests) < 1:
            raise ValueError("GRIDWALK_MAX_INFLIGHT_PUSHES and _REQUESTS must be at least 1")
        needed = admitted + 1 + self.validation_workers
        if needed > self.db_pool_size + self.db_max_overflow:
            raise ValueError(
                f"{admitted} requests admitted at once, the closer and "
                f"{self.validation_workers} validation worker(s) need {needed} database "
                f"connections; the pool has {self.db_pool_size} + {self.db_max_overflow} overflow"
            )
        return self
