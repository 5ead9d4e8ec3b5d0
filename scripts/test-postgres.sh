#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 and create Gridwalk's own role and test database.
# Prints the TEST_DATABASE_URL to use. Needs root (it starts the cluster as its owner).
# `test-postgres.sh --drop` drops the test database (GRIDWALK_PG_DB) again.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
ROLE=${GRIDWALK_PG_ROLE:-gridwalk}
PASSWORD=${GRIDWALK_PG_PASSWORD:-gridwalk-test}
DB=${GRIDWALK_PG_DB:-gridwalk_test}

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

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
else
  psql_admin -c "ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
