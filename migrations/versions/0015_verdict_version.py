"""Assignment verdicts count how many times each was stored (`version`): close-due judges an
assignment before taking its row lock and stores the judgement only if no validation stored
another in between (server/validation/runner.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assignment_verdicts") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("assignment_verdicts") as batch:
        batch.drop_column("version")
