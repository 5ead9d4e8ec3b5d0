"""track_points (device_id, t): the earlier tracks a day may replay are looked up by device too

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_track_points_device_t", "track_points", ["device_id", "t"])


def downgrade() -> None:
    op.drop_index("ix_track_points_device_t", table_name="track_points")
