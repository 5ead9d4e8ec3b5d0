"""The server's tables (SQLModel). Alembic's history in migrations/ must match these exactly.

Every table that reaches a handheld carries `change_seq`: the value of the change counter in the
transaction that last changed the row. The sync cursor is a position in that sequence.

One module for all tables, though it is long: the schema is read whole (by Alembic's autogenerate
and by the test that the models and the migrations agree), and its foreign keys cross every area.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from common import clock
from server.core.db import UTCDateTime

ROLES = ("reader", "crew", "supervisor", "agent", "admin", "billing")

# Constraint names the same on SQLite and PostgreSQL, so migrations can name what they drop.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite needs INTEGER (not BIGINT) for an autoincrementing primary key.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def _ts(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable)


def _created() -> Any:
    return Field(default_factory=clock.now, sa_type=UTCDateTime(), nullable=False)


class ChangeCounter(SQLModel, table=True):
    """A single row; bumping it under its row lock orders sync changes by commit."""

    __tablename__ = "change_counter"
    id: int = Field(primary_key=True)
    value: int = Field(default=0, sa_type=BigInteger, nullable=False)


class DataEpoch(SQLModel, table=True):
    """A single row: which life of the data this server holds. Renewed by `gridwalk
    new-data-epoch` after a restore from backup, so that handhelds push again what it lost."""

    __tablename__ = "data_epoch"
    id: int = Field(primary_key=True)
    value: str = Field(max_length=36, nullable=False)
    started_at: datetime = _created()


class Grid(SQLModel, table=True):
    """A service grid (网格) with its leader."""

    __tablename__ = "grids"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, nullable=False)
    name: str = Field(default="", max_length=200, nullable=False)
    leader_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("users.id", use_alter=True, name="fk_grids_leader_id_users"),
            nullable=True,
        ),
    )
    created_at: datetime = _created()


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('reader', 'crew', 'supervisor', 'agent', 'admin', 'billing')", name="role"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, nullable=False)
    full_name: str = Field(default="", max_length=200, nullable=False)
    # A crew member's number, for the call-centre agent who needs to reach them.
    phone: str | None = Field(default=None, max_length=32)
    password_hash: str = Field(max_length=255, nullable=False)
    role: str = Field(max_length=16, nullable=False)
    grid_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    active: bool = Field(default=True, nullable=False)
    revoked_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _created()


class Device(SQLModel, table=True):
    """A handheld, named by the id it generated for itself on first start."""

    __tablename__ = "devices"
    id: str = Field(primary_key=True, max_length=64)
    last_user_id: int | None = Field(default=None, foreign_key="users.id")
    app_version: str | None = Field(default=None, max_length=32)
    first_seen_at: datetime = _created()
    last_seen_at: datetime = _created()
    revoked_at: datetime | None = _ts(nullable=True)
    # Access tokens carry the generation they were issued in; raising it (a copied refresh
    # token detected, a logout) ends every access token of the device at once. A number, not
    # a time: a token's iat has one-second resolution, so a time could not tell a token issued
    # just before the reset from one issued just after it.
    token_generation: int = Field(default=0, nullable=False)


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored as its SHA-256 only; one chain per user and device."""

    __tablename__ = "refresh_tokens"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, nullable=False)
    user_id: int = Field(foreign_key="users.id", index=True, nullable=False)
    device_id: str = Field(foreign_key="devices.id", index=True, max_length=64, nullable=False)
    issued_at: datetime = _created()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class LoginFailure(SQLModel, table=True):
    """A failed login, counted against the user name tried and the client's address. In the
    database, so that every worker and a restarted server count alike; rows that have left the
    counting window are deleted as new failures come."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_address_at", "address", "at"),
    )
    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    username: str = Field(max_length=64, nullable=False)
    address: str = Field(max_length=64, nullable=False)
    at: datetime = _ts()


class Account(SQLModel, table=True):
    """A customer account (户) of the billing system."""

    __tablename__ = "accounts"
    id: int | None = Field(default=None, primary_key=True)
    account_no: str = Field(max_length=64, unique=True, nullable=False)
    customer_name: str = Field(max_length=200, nullable=False)
    address: str = Field(max_length=500, nullable=False)
    # For the notices a planned outage must send ahead (None: the billing system gave none).
    phone: str | None = Field(default=None, max_length=32)
    active: bool = Field(default=True, nullable=False)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Route(SQLModel, table=True):
    """A reading route (抄表段, meter book): its meters in sequence, in one grid."""

    __tablename__ = "routes"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, nullable=False)
    name: str = Field(default="", max_length=200, nullable=False)
    grid_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    created_at: datetime = _created()


class Meter(SQLModel, table=True):
    __tablename__ = "meters"
    __table_args__ = (
        CheckConstraint("digits BETWEEN 3 AND 12", name="digits"),
        CheckConstraint("multiplier > 0", name="multiplier"),
        Index("ix_meters_route_sequence", "route_id", "sequence"),
    )
    id: int | None = Field(default=None, primary_key=True)
    meter_no: str = Field(max_length=64, unique=True, nullable=False)
    account_id: int = Field(foreign_key="accounts.id", index=True, nullable=False)
    route_id: int = Field(foreign_key="routes.id", nullable=False)
    sequence: int = Field(nullable=False)
    lat: float = Field(nullable=False)
    lon: float = Field(nullable=False)
    digits: int = Field(default=6, nullable=False)
    multiplier: Decimal = Field(default=Decimal(1), sa_type=Numeric(12, 3), nullable=False)
    last_reading: Decimal | None = Field(default=None, sa_type=Numeric(15, 3))
    last_read_at: datetime | None = _ts(nullable=True)
    expected_low: Decimal | None = Field(default=None, sa_type=Numeric(15, 3))
    expected_high: Decimal | None = Field(default=None, sa_type=Numeric(15, 3))
    # How far the mapped position may be off, in metres (None: the billing system does not say).
    position_uncertainty_m: float | None = Field(default=None)
    # Not indexed: a pull finds a route's meters by route; and each push stamps the meters it
    # read, which PostgreSQL then rewrites in place (migration 0016).
    change_seq: int = Field(default=0, sa_type=BigInteger, nullable=False)
    updated_at: datetime = _created()


class Cycle(SQLModel, table=True):
    """A reading period, named by a code such as 2026-11."""

    __tablename__ = "cycles"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, nullable=False)
    created_at: datetime = _created()


class Assignment(SQLModel, table=True):
    """A route given to a reader for a cycle, to be read within the window."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("route_id", "cycle_id", name="uq_assignments_route_cycle"),
        CheckConstraint("window_start <= window_end", name="window"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    route_id: int = Field(foreign_key="routes.id", nullable=False)
    cycle_id: int = Field(foreign_key="cycles.id", index=True, nullable=False)
    reader_id: int = Field(foreign_key="users.id", index=True, nullable=False)
    window_start: date = Field(nullable=False)
    window_end: date = Field(nullable=False)
    status: str = Field(default="open", max_length=16, nullable=False)
    closed_at: datetime | None = _ts(nullable=True)
    change_seq: int = Field(default=0, sa_type=BigInteger, nullable=False, index=True)
    created_at: datetime = _created()


class RereadOrder(SQLModel, table=True):
    """A supervisor's order to read a meter again; the answering reading supersedes the old."""

    __tablename__ = "reread_orders"
    __table_args__ = (CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    assignment_id: int = Field(foreign_key="assignments.id", index=True, nullable=False)
    meter_id: int = Field(foreign_key="meters.id", nullable=False)
    reading_id: uuid.UUID | None = Field(default=None)
    reason: str = Field(default="", max_length=500, nullable=False)
    ordered_by: int = Field(foreign_key="users.id", nullable=False)
    status: str = Field(default="open", max_length=16, nullable=False)
    change_seq: int = Field(default=0, sa_type=BigInteger, nullable=False, index=True)
    created_at: datetime = _created()


class Reading(SQLModel, table=True):
    """A confirmed reading or skip, exactly as the handheld sent it. Rows are never updated.

    A skip is a reading with `skip_code` and no `value`. A re-read names its order in
    `reread_of` and the reading it supersedes in `supersedes`; the database refuses UPDATE and
    DELETE on this table (triggers in the migration), so "locked" holds for every role.
    """

    __tablename__ = "readings"
    __table_args__ = (
        CheckConstraint("(value IS NULL) <> (skip_code IS NULL)", name="value_or_skip"),
        # One original reading per meter and assignment; re-reads are counted by their order.
        Index(
            "uq_readings_first_per_meter",
            "assignment_id",
            "meter_id",
            unique=True,
            sqlite_where=text("reread_of IS NULL"),
            postgresql_where=text("reread_of IS NULL"),
        ),
        Index("ix_readings_assignment_read_at", "assignment_id", "read_at"),
    )
    id: uuid.UUID = Field(primary_key=True)
    assignment_id: int = Field(foreign_key="assignments.id", nullable=False)
    meter_id: int = Field(foreign_key="meters.id", index=True, nullable=False)
    value: Decimal | None = Field(default=None, sa_type=Numeric(15, 3))
    skip_code: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=500)
    read_at: datetime = _ts()
    confirmed_at: datetime = _ts()
    fix_lat: float | None = None
    fix_lon: float | None = None
    fix_accuracy_m: float | None = None
    fix_time: datetime | None = _ts(nullable=True)
    fix_provider: str | None = Field(default=None, max_length=32)
    fix_mock: bool | None = None
    reread_of: uuid.UUID | None = Field(default=None, foreign_key="reread_orders.id", unique=True)
    supersedes: uuid.UUID | None = Field(default=None, foreign_key="readings.id", index=True)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    device_id: str = Field(foreign_key="devices.id", max_length=64, nullable=False)
    sent_at: datetime | None = _ts(nullable=True)
    received_at: datetime = _created()
    content_hash: str = Field(max_length=64, nullable=False)


class TrackPoint(SQLModel, table=True):
    """A position of a user's handheld. A point is the pushing user's own: keyed by user,
    device and time, so that one user pushing under another's device id cannot make the
    other's real point a duplicate, and a device shared by shifts keeps each user's track.

    On PostgreSQL the table is partitioned by month of `t` (migration 0014,
    server/core/partitions.py), and its primary key there is (id, t): a partitioned table's
    keys hold its partition key. The id stays unique (one sequence); nothing references it."""

    __tablename__ = "track_points"
    __table_args__ = (
        UniqueConstraint("user_id", "device_id", "t", name="uq_track_points_user_device_t"),
    )
    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    device_id: str = Field(foreign_key="devices.id", max_length=64, nullable=False)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    t: datetime = _ts()
    lat: float = Field(nullable=False)
    lon: float = Field(nullable=False)
    accuracy_m: float | None = None
    speed: float | None = None
    provider: str = Field(default="gps", max_length=32, nullable=False)
    mock: bool = Field(default=False, nullable=False)
    received_at: datetime = _created()


Index("ix_track_points_user_t", TrackPoint.user_id, TrackPoint.t)  # type: ignore[arg-type]
# The earlier tracks a day may replay are looked up by device as well as by reader.
Index("ix_track_points_device_t", TrackPoint.device_id, TrackPoint.t)  # type: ignore[arg-type]


class Job(SQLModel, table=True):
    """A repair job: crew, content, start, expected and actual finish, place, outage kind."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('fault', 'planned', 'temporary_repair', 'meter_check')",
            name="kind",
        ),
        CheckConstraint("urgency IN ('urgent', 'normal')", name="urgency"),
        CheckConstraint(
            "status IN ('created', 'assigned', 'started', 'finished', 'cancelled')", name="status"
        ),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=32, nullable=False)
    urgency: str = Field(default="normal", max_length=16, nullable=False)
    status: str = Field(default="created", max_length=16, nullable=False, index=True)
    content: str = Field(default="", max_length=2000, nullable=False)
    grid_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    lat: float | None = None
    lon: float | None = None
    address: str | None = Field(default=None, max_length=500)
    area_radius_m: float | None = None
    area_route_id: int | None = Field(default=None, foreign_key="routes.id")
    reported_at: datetime | None = _ts(nullable=True)
    dispatched_at: datetime | None = _ts(nullable=True)
    planned_start: datetime | None = _ts(nullable=True)
    started_at: datetime | None = _ts(nullable=True)
    start_lat: float | None = None
    start_lon: float | None = None
    expected_finish: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    finish_lat: float | None = None
    finish_lon: float | None = None
    result_note: str | None = Field(default=None, max_length=2000)
    cancelled_at: datetime | None = _ts(nullable=True)
    # When the last event happened (device clock), for "last update" on the outage board.
    last_update_at: datetime | None = _ts(nullable=True)
    # A meter check's (申校) field result: method, load, hours, register moved, outcome.
    meter_check: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_by: int | None = Field(default=None, foreign_key="users.id")
    # A fault reported again soon after an outage there was restored: the earlier job.
    follows_job_id: uuid.UUID | None = Field(default=None, foreign_key="jobs.id")
    change_seq: int = Field(default=0, sa_type=BigInteger, nullable=False, index=True)
    created_at: datetime = _created()


class JobCrew(SQLModel, table=True):
    __tablename__ = "job_crew"
    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True)
    user_id: int = Field(foreign_key="users.id", primary_key=True, index=True)


class JobAccount(SQLModel, table=True):
    """An account the job's outage cuts off."""

    __tablename__ = "job_accounts"
    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", primary_key=True, index=True)


class JobEvent(SQLModel, table=True):
    """An event of a job as logged on a handheld (device clock) or at the office, and when the
    server got it. Applied in order; an illegal transition is refused and not stored."""

    __tablename__ = "job_events"
    id: uuid.UUID = Field(primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True, nullable=False)
    kind: str = Field(max_length=32, nullable=False)
    at: datetime = _ts()
    fix_lat: float | None = None
    fix_lon: float | None = None
    fix_accuracy_m: float | None = None
    fix_time: datetime | None = _ts(nullable=True)
    fix_provider: str | None = Field(default=None, max_length=32)
    fix_mock: bool | None = None
    expected_finish: datetime | None = _ts(nullable=True)
    content: str | None = Field(default=None, max_length=2000)
    crew: list[str] | None = Field(default=None, sa_type=JSON)
    note: str | None = Field(default=None, max_length=2000)
    # A job created on a handheld brings its kind, urgency and place with its `created` event.
    job_kind: str | None = Field(default=None, max_length=32)
    urgency: str | None = Field(default=None, max_length=16)
    address: str | None = Field(default=None, max_length=500)
    meter_check: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    # None for what the office did (created or assigned a job from a call), not a handheld.
    device_id: str | None = Field(default=None, foreign_key="devices.id", max_length=64)
    received_at: datetime = _created()
    content_hash: str = Field(max_length=64, nullable=False)


def fix_columns(fix: Any) -> dict[str, Any]:
    """The fix_* columns of a Reading or a JobEvent from a wire Fix (or None: no position)."""
    if fix is None:
        return dict.fromkeys(
            ("fix_lat", "fix_lon", "fix_accuracy_m", "fix_time", "fix_provider", "fix_mock")
        )
    return {
        "fix_lat": fix.lat,
        "fix_lon": fix.lon,
        "fix_accuracy_m": fix.accuracy_m,
        "fix_time": fix.fix_time,
        "fix_provider": fix.provider,
        "fix_mock": fix.mock,
    }


class Flag(SQLModel, table=True):
    """A finding of route validation for a supervisor to review.

    `key` names the finding (code, reading, meter, subject: common.rules.Finding.key), so
    that validating again finds the same row and keeps its review. A flag made otherwise (by
    hand) has no key and validation leaves it alone.
    """

    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint("severity IN ('info', 'warn', 'fail')", name="severity"),
        UniqueConstraint("assignment_id", "key", name="uq_flags_assignment_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignments.id", index=True, nullable=False)
    reading_id: uuid.UUID | None = Field(default=None, foreign_key="readings.id", index=True)
    meter_id: int | None = Field(default=None, foreign_key="meters.id")
    key: str | None = Field(default=None, max_length=200)
    code: str = Field(max_length=32, nullable=False)
    severity: str = Field(max_length=8, nullable=False)
    # The English sentence, as exports show it; `params` are its numbers (common.rules.sentences
    # says them in any language). None on flags made by hand or before params were kept.
    message: str = Field(max_length=1000, nullable=False)
    params: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    review: str | None = Field(default=None, max_length=16)
    review_note: str | None = Field(default=None, max_length=1000)
    reviewed_by: int | None = Field(default=None, foreign_key="users.id")
    reviewed_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _created()


class ValidationWork(SQLModel, table=True):
    """An assignment waiting to be validated again, and the time span of the new data that
    asks for it (server/validation/queue.py).

    Written in the transaction that stores the data, so work is never lost and never exists
    without its data; one row per assignment, so many pushes coalesce into one validation
    (`version` counts them: a worker deletes the row only if none came while it validated).
    """

    __tablename__ = "validation_work"
    assignment_id: int = Field(foreign_key="assignments.id", primary_key=True)
    t_min: datetime = _ts()
    t_max: datetime = _ts()
    # Since when the assignment's flags have been waiting (the first push not yet validated).
    pending_since: datetime = _ts()
    version: int = Field(default=1, nullable=False)
    attempts: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None, max_length=1000)
    # Not claimable before (a failed attempt backs off); a claim older than the lease is
    # taken to be a crashed worker's and may be claimed again.
    next_attempt_at: datetime = Field(sa_type=UTCDateTime(), nullable=False, index=True)
    claimed_at: datetime | None = _ts(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=100)


class AssignmentVerdict(SQLModel, table=True):
    """What the validation last judged an assignment's day to come to (common/rules/verdict.py),
    and the distance walked on its track: stored by the runner in the transaction that
    reconciles its flags (server/validation/verdicts.py), read by the supervisor's list and
    summary, so they never run the rules over a day's track on a request.

    A table of its own, not columns on assignments: assignments reach the handhelds (a change
    there is a change to sync) and are locked by closes and pushes; this row is rewritten on
    every validation and only the audit reads it. No row: never validated (see verdicts.py).
    """

    __tablename__ = "assignment_verdicts"
    assignment_id: int = Field(foreign_key="assignments.id", primary_key=True)
    code: str = Field(max_length=16, nullable=False)
    # The numbers its sentence is made of (common.rules.sentences.verdict_sentence says them in
    # the reader's language): the sentence itself is not stored.
    params: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    walked_m: int = Field(nullable=False)
    judged_at: datetime = _ts()
    # How many times it was judged and stored: a close that judges outside the row lock stores
    # its judgement only if no other was stored meanwhile (runner.close_due_assignments).
    version: int = Field(default=0, nullable=False)


class BillingFeedItem(SQLModel, table=True):
    """A reading handed to billing, as it was when it became ready to bill (server/billing).

    Appended, never changed: a consumer pulling again from an old cursor gets the same items
    with the same content; a re-read is a new item naming the reading it `supersedes`. The
    cursor is (feed_seq, id), feed_seq a number of the change counter (server.core.changes),
    which hands them out in commit order: a page that stops at the committed counter never skips
    an item committed later. Not `change_seq`: the feed does not reach handhelds.
    """

    __tablename__ = "billing_feed"
    __table_args__ = (Index("ix_billing_feed_cycle_seq", "cycle", "feed_seq", "id"),)
    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    reading_id: uuid.UUID = Field(foreign_key="readings.id", unique=True, nullable=False)
    supersedes: uuid.UUID | None = Field(default=None)
    assignment_id: int = Field(foreign_key="assignments.id", nullable=False)
    cycle: str = Field(max_length=32, nullable=False)
    account_no: str = Field(max_length=64, nullable=False)
    meter_no: str = Field(max_length=64, nullable=False)
    read_at: datetime = _ts()
    previous: Decimal = Field(sa_type=Numeric(15, 3), nullable=False)
    current: Decimal = Field(sa_type=Numeric(15, 3), nullable=False)
    consumption_kwh: Decimal = Field(sa_type=Numeric(18, 3), nullable=False)
    feed_seq: int = Field(sa_type=BigInteger, nullable=False, index=True)
    created_at: datetime = _created()


class Withdrawal(SQLModel, table=True):
    """Something a user's device held that is no longer theirs (sent in `withdrawn` on pull)."""

    __tablename__ = "withdrawals"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, nullable=False)
    object_type: str = Field(max_length=16, nullable=False)
    object_id: str = Field(max_length=64, nullable=False)
    assignment_id: int | None = Field(default=None, foreign_key="assignments.id")
    change_seq: int = Field(default=0, sa_type=BigInteger, nullable=False, index=True)
    created_at: datetime = _created()


class AdminLog(SQLModel, table=True):
    """Who did what, when: every administrative and supervisory act. (The admin log, not the
    supervisor's route audit; its table keeps its first name.)"""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    at: datetime = _created()
    actor_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    action: str = Field(max_length=64, nullable=False)
    object_type: str = Field(max_length=32, nullable=False)
    object_id: str = Field(max_length=64, nullable=False)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class LedgerEntry(SQLModel, table=True):
    """One link of the tamper-evident chain: a reading received or an admin act, by the hash of
    its content, chained to the link before (server.core.ledger). The database refuses UPDATE
    and DELETE on this table (triggers in the migration)."""

    __tablename__ = "ledger"
    seq: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False, nullable=False)
    )
    at: datetime = _ts()
    action: str = Field(max_length=64, nullable=False)
    subject: str = Field(max_length=16, nullable=False)
    subject_id: str = Field(max_length=64, nullable=False)
    content_hash: str = Field(max_length=64, nullable=False)
    prev_hash: str = Field(max_length=64, nullable=False)
    hash: str = Field(max_length=64, nullable=False)


class LedgerHead(SQLModel, table=True):
    """A single row: the chain's last link. Bumping it under its row lock serialises writers, so
    the chain never forks; and a chain cut short no longer ends where its head says."""

    __tablename__ = "ledger_head"
    id: int = Field(primary_key=True)
    seq: int = Field(default=0, sa_type=BigInteger, nullable=False)
    hash: str = Field(max_length=64, nullable=False)


# The change counter is stamped by a flush hook that lives with the counter; importing it here
# registers it wherever models are used. (At the end: it imports AdminLog from this module.)
import server.core.changes  # noqa: E402
import server.core.ledger  # noqa: E402, F401 - the chain's hooks, likewise
