#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 and create Gridwalk's two roles and a test database: the
# owner (GRIDWALK_PG_ROLE), who owns the tables and runs the migrations, and the app
# (GRIDWALK_PG_APP_ROLE), who serves: it may read and write rows but owns nothing, so it cannot
# turn off the triggers that keep readings, the ledger and the admin log append-only.
# Prints the owner's URL (TEST_DATABASE_URL); `--app` prints the app's (TEST_APP_DATABASE_URL).
# Needs root (it starts the cluster as its owner).
# `test-postgres.sh --drop` drops the test database (GRIDWALK_PG_DB) again.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
ROLE=${GRIDWALK_PG_ROLE:-gridwalk}
PASSWORD=${GRIDWALK_PG_PASSWORD:-gridwalk-test}
DB=${GRIDWALK_PG_DB:-gridwalk_test}
APP_ROLE=${GRIDWALK_PG_APP_ROLE:-gridwalk_app}
APP_PASSWORD=${GRIDWALK_PG_APP_PASSWORD:-gridwalk-app-test}

fail() { echo "test-postgres: $*" >&2; exit 1; }

command -v pg_ctlcluster >/dev/null || fail "PostgreSQL is not installed (apt-get install postgresql-$PG_VERSION)"
[ "$(id -u)" = 0 ] || fail "must run as root to start the cluster and create the role"

status=$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}')
[ -n "$status" ] || fail "no cluster $PG_VERSION/$PG_CLUSTER (pg_createcluster $PG_VERSION $PG_CLUSTER)"
if [ "$status" != online ]; then
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >&2
fi
port=$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $3}')

psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAtX "$@"; }
for _ in $(seq 1 30); do psql_admin -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
psql_admin -c 'SELECT 1' >/dev/null || fail "cluster did not accept connections"

if [ "${1:-}" = --drop ]; then
  psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >&2
  exit 0
fi

login_role() {  # name password: a plain login role (no superuser, no CREATEROLE, no CREATEDB)
  if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$1'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $1 LOGIN PASSWORD '$2'" >&2
  else
    psql_admin -c "ALTER ROLE $1 LOGIN PASSWORD '$2'" >&2
  fi
}
login_role "$ROLE" "$PASSWORD"
login_role "$APP_ROLE" "$APP_PASSWORD"
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi
# The app's rights on whatever the owner creates, now (tables already migrated) and later
# (the migrations to come; and a schema dropped and made again, as the tests do). Rows only:
# no TRUNCATE (it fires no row trigger), no DDL, no ownership.
psql_admin -d "$DB" >&2 <<SQL
REVOKE ALL ON DATABASE $DB FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE $DB TO $ROLE, $APP_ROLE;
GRANT USAGE ON SCHEMA public TO $APP_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $APP_ROLE;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO $APP_ROLE;
ALTER DEFAULT PRIVILEGES FOR ROLE $ROLE GRANT USAGE ON SCHEMAS TO $APP_ROLE;
ALTER DEFAULT PRIVILEGES FOR ROLE $ROLE GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO $APP_ROLE;
ALTER DEFAULT PRIVILEGES FOR ROLE $ROLE GRANT USAGE, SELECT ON SEQUENCES TO $APP_ROLE;
SQL

if [ "${1:-}" = --app ]; then
  echo "postgresql+psycopg://$APP_ROLE:$APP_PASSWORD@127.0.0.1:$port/$DB"
else
  echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
fi
