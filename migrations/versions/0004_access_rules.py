"""access rules: a track point is keyed by its user too; a device's token generation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

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


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("token_generation")
    # Fails (and changes nothing) if two users hold a point at the same time on one device:
    # the old key cannot hold both, and a downgrade must not drop evidence to fit it.
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.drop_constraint("uq_track_points_user_device_t", type_="unique")
        batch_op.create_unique_constraint("uq_track_points_device_t", ["device_id", "t"])
