"""A meter read is stamped with a new change number by every push (changes.stamp): without an
index on `change_seq` (the pull finds a route's meters by route, then compares the number), and
with room left on each page, PostgreSQL rewrites the row in place (a HOT update) instead of
adding an entry to each of the meters' five indexes: less of the database's work under the
change counter's lock, which every push waits for.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 07:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Half of each page left free for the meters' next versions: a push stamps a route's meters at
# once, ~50 to a page, and the old versions are reclaimed only once it commits. With 90, 4,494
# of 24,000 stamps were in place; with 50, all of them, and the stamp took half the time
# (bench/README.md). PostgreSQL only; applies to the pages written from now on.
FILLFACTOR = 50


def upgrade() -> None:
    with op.batch_alter_table("meters") as batch:
        batch.drop_index("ix_meters_change_seq")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE meters SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE meters RESET (fillfactor)")
    with op.batch_alter_table("meters") as batch:
        batch.create_index("ix_meters_change_seq", ["change_seq"], unique=False)
