#!/usr/bin/env bash
# Everything `make test` runs: lint, type check, then every test on SQLite and PostgreSQL.
# Starts the machine's PostgreSQL and makes Gridwalk's own role and test database when run as
# root (as on CI and a fresh developer machine); otherwise TEST_DATABASE_URL must be given.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    TEST_DATABASE_URL=$(scripts/test-postgres.sh)
    export TEST_DATABASE_URL
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true and no PostgreSQL to start: the PostgreSQL tests cannot run" >&2
    exit 1
  else
    echo "test.sh: no TEST_DATABASE_URL and cannot start PostgreSQL: its tests are skipped" >&2
  fi
fi

# The browser tests (tests/e2e) drive Debian's Chromium: installed here when missing, as root.
# With CI=true a missing browser fails those tests (tests/e2e/conftest.py), never skips them.
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true and no chromium/chromedriver, and not root to install them" >&2
    exit 1
  else
    echo "test.sh: no chromium/chromedriver and not root: the browser tests are skipped" >&2
  fi
fi

echo "== ruff"; $BIN/ruff check .
echo "== mypy"; $BIN/mypy
echo "== pytest"; $BIN/pytest "$@"
