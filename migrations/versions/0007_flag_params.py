"""flags.params: a finding's numbers, so that its sentence can be said in the reader's language

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: flags written before this (and flags made by hand) have only their English
    # sentence; the next validation of their assignment fills it in for the ones it finds.
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_column("params")
