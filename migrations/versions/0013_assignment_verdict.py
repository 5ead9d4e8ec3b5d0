"""Assignment verdicts: what the validation judged each assignment's day to come to, stored with
its flags (server/validation/verdicts.py); every assignment queued for validation, to be judged

An older database has no verdicts, and only the rules can judge one (over the whole day's track),
which a migration must not run: so every assignment is queued (validation_work), like one that
new data reached. The server's workers drain the queue when it starts (`gridwalk
validate-pending` does it at once); until an assignment is validated the supervisor's list says
its validation is pending. Validating again is what every push does: flags that still hold keep
their rows and reviews. On a long history, drain before opening the server to pushes: the queue
takes the oldest work first.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db
from common import clock

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignment_verdicts",
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("walked_m", sa.Integer(), nullable=False),
        sa.Column("judged_at", server.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_assignment_verdicts_assignment_id_assignments"),
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_assignment_verdicts")),
    )
    assignments = sa.table("assignments", sa.column("id", sa.Integer()))
    work = sa.table(
        "validation_work",
        *(
            sa.column(name, server.core.db.UTCDateTime())
            for name in ("t_min", "t_max", "pending_since", "next_attempt_at")
        ),
        sa.column("assignment_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("attempts", sa.Integer()),
    )
    now = sa.literal(clock.now(), server.core.db.UTCDateTime())
    # An assignment already queued keeps its row (and its span).
    op.execute(
        work.insert().from_select(
            [
                "assignment_id",
                "t_min",
                "t_max",
                "pending_since",
                "version",
                "attempts",
                "next_attempt_at",
            ],
            sa.select(assignments.c.id, now, now, now, sa.literal(1), sa.literal(0), now).where(
                ~sa.exists().where(work.c.assignment_id == assignments.c.id)
            ),
        )
    )


def downgrade() -> None:
    op.drop_table("assignment_verdicts")
