"""Billing: the `billing` role (a machine account of the billing system) and billing_feed, the
readings handed to billing as they become ready to bill

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES_BEFORE = "role IN ('reader', 'crew', 'supervisor', 'agent', 'admin')"
ROLES_AFTER = "role IN ('reader', 'crew', 'supervisor', 'agent', 'admin', 'billing')"


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role"), ROLES_AFTER)
    op.create_table(
        "billing_feed",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reading_id", sa.Uuid(), nullable=False),
        sa.Column("supersedes", sa.Uuid(), nullable=True),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("account_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("meter_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("read_at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("previous", sa.Numeric(precision=15, scale=3), nullable=False),
        sa.Column("current", sa.Numeric(precision=15, scale=3), nullable=False),
        sa.Column("consumption_kwh", sa.Numeric(precision=18, scale=3), nullable=False),
        sa.Column("feed_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name="fk_billing_feed_assignment_id_assignments"
        ),
        sa.ForeignKeyConstraint(
            ["reading_id"], ["readings.id"], name="fk_billing_feed_reading_id_readings"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_feed")),
        sa.UniqueConstraint("reading_id", name=op.f("uq_billing_feed_reading_id")),
    )
    with op.batch_alter_table("billing_feed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_feed_feed_seq"), ["feed_seq"], unique=False)
        batch_op.create_index(
            "ix_billing_feed_cycle_seq", ["cycle", "feed_seq", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("billing_feed")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role"), ROLES_BEFORE)
