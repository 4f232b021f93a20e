#!/usr/bin/env bash
# Runs every check: lint, types, layer contracts, then unit and kernel tests (kernel tests
# need root; they run inside sandbox namespaces and never touch this machine's network).
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -q
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check controller tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
