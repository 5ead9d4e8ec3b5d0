"""data_epoch: which life of the server's data the handhelds talk to (renewed after a restore)

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db
from common import clock

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "data_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("started_at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_epoch")),
    )
    # The first epoch: devices that see it for the first time only remember it.
    op.bulk_insert(table, [{"id": 1, "value": str(uuid.uuid4()), "started_at": clock.now()}])


def downgrade() -> None:
    op.drop_table("data_epoch")
