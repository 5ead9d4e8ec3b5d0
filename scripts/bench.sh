#!/usr/bin/env bash
# Every bench of bench/, on SQLite and on PostgreSQL (a throw-away database of its own,
# gridwalk_bench, emptied by each bench), each bounded by a timeout: the figures go to the
# terminal and to var/bench/<bench>-<database>.txt. bench/README.md says what each measures.
# `scripts/bench.sh NAME...` runs only those benches (e.g. scripts/bench.sh ingest close_due).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=var/bench
mkdir -p "$OUT"
# BENCH_DATABASE_URL: a throw-away PostgreSQL database of your own (without root, for one).
PG=${BENCH_DATABASE_URL:-$(GRIDWALK_PG_DB=${GRIDWALK_BENCH_DB:-gridwalk_bench} scripts/test-postgres.sh)} || {
  echo "bench: PostgreSQL could not be set up (give one: BENCH_DATABASE_URL=...)" >&2
  exit 1
}
LIMIT=${BENCH_TIMEOUT_S:-1800}  # per bench and database: a run never hangs `make bench`
failed=()

run() {  # run NAME DB ARGS...: one bench on one database
  local name=$1 db=$2
  shift 2
  echo "=== bench.$name ($db) $*"
  if ! timeout "$LIMIT" "$PY" -m "bench.$name" "$@" 2>&1 | tee "$OUT/$name-$db.txt"; then
    failed+=("$name/$db")
  fi
}

# Each bench: on SQLite (a temporary file) and on PostgreSQL. The ones that take --pg run
# SQLite first and then PostgreSQL in one go.
bench() {
  case $1 in
    sync_push | wire | validation | push_open_days | overload | close_due | ingest)
      local args=()
      case $1 in
        overload) args=(--seconds 60) ;;
        close_due) args=(--days 1,10,100,300) ;;
        ingest) args=(--days 1,10,100,300) ;;
      esac
      run "$1" sqlite "${args[@]}"
      run "$1" postgresql --database-url "$PG" "${args[@]}"
      ;;
    cycle_overview | audit_list | import_meters) run "$1" both --pg "$PG" ;;
    replay) run replay sqlite ;;
    track_partitions) run track_partitions postgresql --database-url "$PG" ;;
    *) echo "bench: no bench $1" >&2; failed+=("$1") ;;
  esac
}

ALL=(sync_push wire ingest push_open_days validation replay close_due overload cycle_overview
  audit_list import_meters track_partitions)
for name in "${@:-${ALL[@]}}"; do bench "$name"; done

if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed or timed out: ${failed[*]}" >&2
  exit 1
fi
