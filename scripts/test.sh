#!/usr/bin/env bash
# Runs the whole test suite twice: on the embedded SQLite default and on PostgreSQL.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k ingest`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh postgresql redis chromium dovecot

echo "== Test suite on SQLite =="
POSTROOM_TEST_DATABASE=sqlite .venv/bin/python -m pytest "$@"
echo "== Test suite on PostgreSQL =="
POSTROOM_TEST_DATABASE=postgresql .venv/bin/python -m pytest "$@"
