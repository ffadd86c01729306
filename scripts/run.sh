#!/usr/bin/env bash
# Runs Postroom on the embedded default (SQLite under ./data, one process) with the
# demo account filled in, and prints where to open it and how to log in.
# Extra arguments go to `postroom serve` (e.g. `bash scripts/run.sh --port 9000`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/postroom serve --demo "$@"
