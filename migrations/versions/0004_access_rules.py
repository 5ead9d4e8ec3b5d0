"""access rules: a track point is keyed by its user too; a device's token generation; failed
logins counted for the login rate limit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (device_id, t) let one user's push make another's real point a duplicate.
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.drop_constraint("uq_track_points_device_t", type_="unique")
        batch_op.create_unique_constraint(
            "uq_track_points_user_device_t", ["user_id", "device_id", "t"]
        )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_username_at", ["username", "at"], unique=False)
        batch_op.create_index("ix_login_failures_address_at", ["address", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("login_failures")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("token_generation")
    # Fails (and changes nothing) if two users hold a point at the same time on one device:
    # the old key cannot hold both, and a downgrade must not drop evidence to fit it.
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.drop_constraint("uq_track_points_user_device_t", type_="unique")
        batch_op.create_unique_constraint("uq_track_points_device_t", ["device_id", "t"])
