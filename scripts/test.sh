#!/usr/bin/env bash
# Everything `make test` runs: lint, type check, then every test on SQLite and PostgreSQL.
# Starts the machine's PostgreSQL and makes Gridwalk's own role and test database when run as
# root (as on CI and a fresh developer machine); otherwise TEST_DATABASE_URL must be given.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    # A database of this run's own: two runs at once (a developer's and a CI's) must not
    # truncate each other's tables. It is dropped when the run ends.
    export GRIDWALK_PG_DB="gridwalk_test_$$"
    TEST_DATABASE_URL=$(scripts/test-postgres.sh)
    # The app's own role (owns nothing): the tests that it cannot turn the locks off use it.
    TEST_APP_DATABASE_URL=$(scripts/test-postgres.sh --app)
    export TEST_DATABASE_URL TEST_APP_DATABASE_URL
    trap 'scripts/test-postgres.sh --drop >/dev/null 2>&1 || true' EXIT
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true and no PostgreSQL to start: the PostgreSQL tests cannot run" >&2
    exit 1
  else
    echo "test.sh: no TEST_DATABASE_URL and cannot start PostgreSQL: its tests are skipped" >&2
  fi
fi

# The browser tests (tests/e2e) drive Debian's Chromium; the handheld's UI tests open a real
# Kivy window on Xvfb. Both are installed here when missing, as root, with one apt-get update.
# With CI=true a missing one fails its tests (the fixtures say so), never skips them.
missing=()
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing+=(chromium chromium-driver)
command -v Xvfb >/dev/null || missing+=(xvfb xauth)
[ -e /usr/lib/x86_64-linux-gnu/libmtdev.so.1 ] || ldconfig -p | grep -q libmtdev.so.1 || missing+=(libmtdev1)
# A Chinese font: the handheld's font test draws with it (`make setup` installs it as root).
{ command -v fc-list >/dev/null && fc-list :lang=zh-cn | grep -q .; } || missing+=(fontconfig fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true and missing ${missing[*]}, and not root to install them" >&2
    exit 1
  else
    echo "test.sh: missing ${missing[*]} and not root: their tests are skipped or fail" >&2
  fi
fi

echo "== ruff"; $BIN/ruff check .
echo "== mypy"; $BIN/mypy
echo "== pytest"; $BIN/pytest "$@"

# The suite holds on any date: the SQLite half again, with the process clock moved 120 days on
# (libfaketime, preloaded into pytest and everything it starts: the handheld, Xvfb, Chromium).
# The build from PyPI's libfaketime, with the monotonic clock left alone: Debian's 0.9.10 hangs
# Python's timed waits (threading.Event.wait) whether or not it fakes the monotonic clock.
# PostgreSQL keeps its own clock, so its half is not run here.
shift_by=${GRIDWALK_CLOCK_SHIFT:-+120d}
faketime_lib=$($BIN/python -c 'import libfaketime, pathlib; print(pathlib.Path(libfaketime.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1")')
echo "== pytest, SQLite, the clock moved $shift_by"
LD_PRELOAD=$faketime_lib FAKETIME=$shift_by FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_NO_CACHE=1 \
  $BIN/pytest -p no:cacheprovider -k "not postgresql" "$@"
