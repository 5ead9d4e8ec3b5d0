"""Call-centre: users.phone (a crew member's number for the agent), accounts.phone (for the
notices of a planned outage), jobs.follows_job_id (a fault reported again after its restoration)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follows_job_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_follows_job_id_jobs"), "jobs", ["follows_job_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_follows_job_id_jobs"), type_="foreignkey")
        batch_op.drop_column("follows_job_id")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("phone")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("phone")
