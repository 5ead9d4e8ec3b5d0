"""flags.key: a validation finding's name, unique per assignment

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: flags made before validation ran (or by hand) have no finding to be named by,
    # and NULLs never collide in a unique constraint on SQLite or PostgreSQL.
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.create_unique_constraint("uq_flags_assignment_key", ["assignment_id", "key"])


def downgrade() -> None:
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_constraint("uq_flags_assignment_key", type_="unique")
        batch_op.drop_column("key")
