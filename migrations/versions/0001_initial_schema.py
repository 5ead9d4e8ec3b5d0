"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:36:56.219863
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.core.db

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('customer_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('account_no', name=op.f('uq_accounts_account_no'))
    )
    op.create_table('change_counter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_counter'))
    )
    op.create_table('cycles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cycles')),
    sa.UniqueConstraint('code', name=op.f('uq_cycles_code'))
    )
    op.create_table('grids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grids')),
    sa.UniqueConstraint('code', name=op.f('uq_grids_code'))
    )
    op.create_table('routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_routes_grid_id_grids')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    sa.UniqueConstraint('code', name=op.f('uq_routes_code'))
    )
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routes_grid_id'), ['grid_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('revoked_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('reader', 'crew', 'supervisor', 'agent', 'admin')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_users_grid_id_grids')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_grid_id'), ['grid_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('cycle_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('closed_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_assignments_status')),
    sa.CheckConstraint('window_start <= window_end', name=op.f('ck_assignments_window')),
    sa.ForeignKeyConstraint(['cycle_id'], ['cycles.id'], name=op.f('fk_assignments_cycle_id_cycles')),
    sa.ForeignKeyConstraint(['reader_id'], ['users.id'], name=op.f('fk_assignments_reader_id_users')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_assignments_route_id_routes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('route_id', 'cycle_id', name='uq_assignments_route_cycle')
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_change_seq'), ['change_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_cycle_id'), ['cycle_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_reader_id'), ['reader_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('object_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('object_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor_id'), ['actor_id'], unique=False)

    op.create_table('devices',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('last_user_id', sa.Integer(), nullable=True),
    sa.Column('app_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('first_seen_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['last_user_id'], ['users.id'], name=op.f('fk_devices_last_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('urgency', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('content', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('area_radius_m', sa.Float(), nullable=True),
    sa.Column('area_route_id', sa.Integer(), nullable=True),
    sa.Column('reported_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('planned_start', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('start_lat', sa.Float(), nullable=True),
    sa.Column('start_lon', sa.Float(), nullable=True),
    sa.Column('expected_finish', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finish_lat', sa.Float(), nullable=True),
    sa.Column('finish_lon', sa.Float(), nullable=True),
    sa.Column('result_note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('fault', 'planned', 'temporary_repair', 'meter_check')", name=op.f('ck_jobs_kind')),
    sa.CheckConstraint("urgency IN ('urgent', 'normal')", name=op.f('ck_jobs_urgency')),
    sa.ForeignKeyConstraint(['area_route_id'], ['routes.id'], name=op.f('fk_jobs_area_route_id_routes')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_jobs_created_by_users')),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_jobs_grid_id_grids')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_change_seq'), ['change_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_grid_id'), ['grid_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)

    op.create_table('meters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meter_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('digits', sa.Integer(), nullable=False),
    sa.Column('multiplier', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('last_reading', sa.Numeric(precision=15, scale=3), nullable=True),
    sa.Column('last_read_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expected_low', sa.Numeric(precision=15, scale=3), nullable=True),
    sa.Column('expected_high', sa.Numeric(precision=15, scale=3), nullable=True),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('digits BETWEEN 3 AND 12', name=op.f('ck_meters_digits')),
    sa.CheckConstraint('multiplier > 0', name=op.f('ck_meters_multiplier')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_meters_account_id_accounts')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_meters_route_id_routes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters')),
    sa.UniqueConstraint('meter_no', name=op.f('uq_meters_meter_no'))
    )
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meters_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meters_change_seq'), ['change_seq'], unique=False)
        batch_op.create_index('ix_meters_route_sequence', ['route_id', 'sequence'], unique=False)

    op.create_table('job_accounts',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_job_accounts_account_id_accounts')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_accounts_job_id_jobs')),
    sa.PrimaryKeyConstraint('job_id', 'account_id', name=op.f('pk_job_accounts'))
    )
    with op.batch_alter_table('job_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_accounts_account_id'), ['account_id'], unique=False)

    op.create_table('job_crew',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_crew_job_id_jobs')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_job_crew_user_id_users')),
    sa.PrimaryKeyConstraint('job_id', 'user_id', name=op.f('pk_job_crew'))
    )
    with op.batch_alter_table('job_crew', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_crew_user_id'), ['user_id'], unique=False)

    op.create_table('job_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fix_lat', sa.Float(), nullable=True),
    sa.Column('fix_lon', sa.Float(), nullable=True),
    sa.Column('fix_accuracy_m', sa.Float(), nullable=True),
    sa.Column('fix_time', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fix_provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('fix_mock', sa.Boolean(), nullable=True),
    sa.Column('expected_finish', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('content', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('crew', sa.JSON(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('received_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_job_events_device_id_devices')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_events_job_id_jobs')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_job_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_events'))
    )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_events_job_id'), ['job_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issued_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_refresh_tokens_device_id_devices')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('reread_orders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('reading_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('ordered_by', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name=op.f('ck_reread_orders_status')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_reread_orders_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_reread_orders_meter_id_meters')),
    sa.ForeignKeyConstraint(['ordered_by'], ['users.id'], name=op.f('fk_reread_orders_ordered_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reread_orders'))
    )
    with op.batch_alter_table('reread_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reread_orders_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reread_orders_change_seq'), ['change_seq'], unique=False)

    op.create_table('track_points',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('t', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('speed', sa.Float(), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('mock', sa.Boolean(), nullable=False),
    sa.Column('received_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_track_points_device_id_devices')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_track_points_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_track_points')),
    sa.UniqueConstraint('device_id', 't', name='uq_track_points_device_t')
    )
    with op.batch_alter_table('track_points', schema=None) as batch_op:
        batch_op.create_index('ix_track_points_user_t', ['user_id', 't'], unique=False)

    op.create_table('withdrawals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('object_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('object_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_withdrawals_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_withdrawals_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_withdrawals_change_seq'), ['change_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_withdrawals_user_id'), ['user_id'], unique=False)

    op.create_table('readings',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Numeric(precision=15, scale=3), nullable=True),
    sa.Column('skip_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('read_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fix_lat', sa.Float(), nullable=True),
    sa.Column('fix_lon', sa.Float(), nullable=True),
    sa.Column('fix_accuracy_m', sa.Float(), nullable=True),
    sa.Column('fix_time', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fix_provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('fix_mock', sa.Boolean(), nullable=True),
    sa.Column('reread_of', sa.Uuid(), nullable=True),
    sa.Column('supersedes', sa.Uuid(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sent_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.CheckConstraint('(value IS NULL) <> (skip_code IS NULL)', name=op.f('ck_readings_value_or_skip')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_readings_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_readings_device_id_devices')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_readings_meter_id_meters')),
    sa.ForeignKeyConstraint(['reread_of'], ['reread_orders.id'], name=op.f('fk_readings_reread_of_reread_orders')),
    sa.ForeignKeyConstraint(['supersedes'], ['readings.id'], name=op.f('fk_readings_supersedes_readings')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_readings_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readings')),
    sa.UniqueConstraint('reread_of', name=op.f('uq_readings_reread_of'))
    )
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.create_index('ix_readings_assignment_read_at', ['assignment_id', 'read_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_readings_meter_id'), ['meter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_readings_supersedes'), ['supersedes'], unique=False)
        batch_op.create_index('uq_readings_first_per_meter', ['assignment_id', 'meter_id'], unique=True, sqlite_where=sa.text('reread_of IS NULL'), postgresql_where=sa.text('reread_of IS NULL'))

    op.create_table('flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('reading_id', sa.Uuid(), nullable=True),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('review', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('review_note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('reviewed_by', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', server.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', server.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("severity IN ('info', 'warn', 'fail')", name=op.f('ck_flags_severity')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_flags_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_flags_meter_id_meters')),
    sa.ForeignKeyConstraint(['reading_id'], ['readings.id'], name=op.f('fk_flags_reading_id_readings')),
    sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], name=op.f('fk_flags_reviewed_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags'))
    )
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flags_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_flags_reading_id'), ['reading_id'], unique=False)


    # grids.leader_id and users.grid_id point at each other: the grid's leader comes second.
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_grids_leader_id_users', 'users', ['leader_id'], ['id'])
    _create_reading_lock()
    op.execute("INSERT INTO change_counter (id, value) VALUES (1, 0)")


def downgrade() -> None:
    _drop_reading_lock()
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.drop_constraint('fk_grids_leader_id_users', type_='foreignkey')
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flags_reading_id'))
        batch_op.drop_index(batch_op.f('ix_flags_assignment_id'))

    op.drop_table('flags')
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.drop_index('uq_readings_first_per_meter', sqlite_where=sa.text('reread_of IS NULL'), postgresql_where=sa.text('reread_of IS NULL'))
        batch_op.drop_index(batch_op.f('ix_readings_supersedes'))
        batch_op.drop_index(batch_op.f('ix_readings_meter_id'))
        batch_op.drop_index('ix_readings_assignment_read_at')

    op.drop_table('readings')
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_withdrawals_user_id'))
        batch_op.drop_index(batch_op.f('ix_withdrawals_change_seq'))

    op.drop_table('withdrawals')
    with op.batch_alter_table('track_points', schema=None) as batch_op:
        batch_op.drop_index('ix_track_points_user_t')

    op.drop_table('track_points')
    with op.batch_alter_table('reread_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reread_orders_change_seq'))
        batch_op.drop_index(batch_op.f('ix_reread_orders_assignment_id'))

    op.drop_table('reread_orders')
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_device_id'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_events_job_id'))

    op.drop_table('job_events')
    with op.batch_alter_table('job_crew', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_crew_user_id'))

    op.drop_table('job_crew')
    with op.batch_alter_table('job_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_accounts_account_id'))

    op.drop_table('job_accounts')
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.drop_index('ix_meters_route_sequence')
        batch_op.drop_index(batch_op.f('ix_meters_change_seq'))
        batch_op.drop_index(batch_op.f('ix_meters_account_id'))

    op.drop_table('meters')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_jobs_grid_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_change_seq'))

    op.drop_table('jobs')
    op.drop_table('devices')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_actor_id'))

    op.drop_table('audit_log')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_reader_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_cycle_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_change_seq'))

    op.drop_table('assignments')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_grid_id'))

    op.drop_table('users')
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routes_grid_id'))

    op.drop_table('routes')
    op.drop_table('grids')
    op.drop_table('cycles')
    op.drop_table('change_counter')
    op.drop_table('accounts')


# Confirmed means locked, for every role: the database itself refuses to change a reading.
_LOCK_MESSAGE = "readings are locked: a confirmed reading is never changed or deleted"


def _create_reading_lock() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION gridwalk_readings_locked() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_LOCK_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER readings_locked BEFORE UPDATE OR DELETE ON readings
            FOR EACH ROW EXECUTE FUNCTION gridwalk_readings_locked()
        """)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER readings_locked_{verb.lower()} BEFORE {verb} ON readings
                BEGIN SELECT RAISE(ABORT, '{_LOCK_MESSAGE}'); END
            """)


def _drop_reading_lock() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS readings_locked ON readings")
        op.execute("DROP FUNCTION IF EXISTS gridwalk_readings_locked()")
    else:
        op.execute("DROP TRIGGER IF EXISTS readings_locked_update")
        op.execute("DROP TRIGGER IF EXISTS readings_locked_delete")
