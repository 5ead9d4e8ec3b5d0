"""validation_work: the durable queue of assignments to validate again, off the push path

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "validation_work",
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("t_min", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("t_max", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pending_since", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("next_attempt_at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", server.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name="fk_validation_work_assignment_id_assignments",
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_validation_work")),
    )
    with op.batch_alter_table("validation_work", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_validation_work_next_attempt_at"), ["next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("validation_work", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_validation_work_next_attempt_at"))
    op.drop_table("validation_work")
