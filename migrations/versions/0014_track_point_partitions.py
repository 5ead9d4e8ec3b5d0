"""track_points partitioned by month on PostgreSQL (server/core/partitions.py); SQLite unchanged

The table is made again as PARTITION BY RANGE (t): one partition a month the existing points
span, a DEFAULT partition, the rows moved. Every key of a partitioned table must hold the
partition key: the primary key becomes (id, t) (nothing references track_points.id; the id
stays unique, drawn from the same sequence); the push's key (user_id, device_id, t) and both
indexes already end in t. Downgrade makes a plain table again with the rows.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

from server.core import partitions

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = partitions.SCHEMA
COLUMNS = "id, device_id, user_id, t, lat, lon, accuracy_m, speed, provider, mock, received_at"


def _rebuild(partitioned: bool) -> None:
    """Make track_points again (partitioned or plain) with the same columns, keys, indexes
    and rows; the old table is renamed out of the way first (its index names too, as index
    names are the schema's)."""
    op.execute("ALTER TABLE track_points RENAME TO track_points_old")
    op.execute("ALTER TABLE track_points_old RENAME CONSTRAINT pk_track_points TO pk_old")
    op.execute(
        "ALTER TABLE track_points_old RENAME CONSTRAINT uq_track_points_user_device_t TO uq_old"
    )
    op.execute("ALTER INDEX ix_track_points_user_t RENAME TO ix_old_user_t")
    op.execute("ALTER INDEX ix_track_points_device_t RENAME TO ix_old_device_t")
    # The id's sequence belongs to the old table: freed, so dropping that table keeps it.
    op.execute("ALTER SEQUENCE track_points_id_seq OWNED BY NONE")
    key = "(id, t)" if partitioned else "(id)"
    op.execute(
        "CREATE TABLE track_points (LIKE track_points_old INCLUDING DEFAULTS, "
        f"CONSTRAINT pk_track_points PRIMARY KEY {key}, "
        "CONSTRAINT uq_track_points_user_device_t UNIQUE (user_id, device_id, t), "
        "CONSTRAINT fk_track_points_device_id_devices FOREIGN KEY (device_id) "
        "REFERENCES devices (id), "
        "CONSTRAINT fk_track_points_user_id_users FOREIGN KEY (user_id) REFERENCES users (id))"
        + (" PARTITION BY RANGE (t)" if partitioned else "")
    )
    op.execute("ALTER SEQUENCE track_points_id_seq OWNED BY track_points.id")
    op.execute("CREATE INDEX ix_track_points_user_t ON track_points (user_id, t)")
    op.execute("CREATE INDEX ix_track_points_device_t ON track_points (device_id, t)")
    if partitioned:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        op.execute(f"CREATE TABLE {SCHEMA}.{partitions.DEFAULT} PARTITION OF track_points DEFAULT")
    op.execute(
        f"INSERT INTO track_points ({COLUMNS}) SELECT {COLUMNS} FROM track_points_old"  # noqa: S608
    )
    op.execute("DROP TABLE track_points_old")
    if partitioned:
        # The months the rows span get partitions of their own (moved out of DEFAULT); the
        # months ahead are `gridwalk partitions`' (and `gridwalk serve`'s at start).
        partitions.ensure_spanned(op.get_bind())


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild(partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild(partitioned=False)
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
