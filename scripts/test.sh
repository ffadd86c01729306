#!/usr/bin/env bash
# Runs the whole test suite twice, at the same time: on the embedded SQLite default and
# on PostgreSQL. Most of a suite's time is spent waiting on servers, browsers and
# sockets, not on the CPU, so the two passes overlap well on two cores. Each line of
# output is prefixed with its pass; the exit status is non-zero if either pass failed.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k ingest`).
# POSTROOM_TEST_SEQUENTIAL=1 runs the passes one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh postgresql redis chromium dovecot

run_pass() {  # run_pass DATABASE [pytest args...]
    local database=$1
    shift
    set +e
    POSTROOM_TEST_DATABASE=$database .venv/bin/python -m pytest "$@" 2>&1 | sed -u "s/^/[$database] /"
    local status=${PIPESTATUS[0]}
    set -e
    echo "[$database] == pass finished with status $status =="
    return "$status"
}

if [[ "${POSTROOM_TEST_SEQUENTIAL:-}" == "1" ]]; then
    run_pass sqlite "$@"
    run_pass postgresql "$@"
    exit 0
fi

echo "== Test suite on SQLite and on PostgreSQL, in parallel =="
run_pass sqlite "$@" &
sqlite_pid=$!
run_pass postgresql "$@" &
postgresql_pid=$!
status=0
wait "$sqlite_pid" || status=1
wait "$postgresql_pid" || status=1
exit "$status"
