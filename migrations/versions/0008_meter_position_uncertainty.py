"""meters.position_uncertainty_m: how far the billing system's mapped position may be off

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a meter imported without the column has no stated uncertainty (presence adds 0).
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position_uncertainty_m", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("position_uncertainty_m")
