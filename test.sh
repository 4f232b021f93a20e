#!/usr/bin/env bash
# Runs every check: lint, types, layer contracts, then unit and kernel tests (kernel tests
# need root; they run inside sandbox namespaces and never touch this machine's network).
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -q
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check controller tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
# Byte-compile once: the tests run netctl as a fresh process hundreds of times, and with
# PYTHONDONTWRITEBYTECODE set (as on this machine) each one would compile every module again
# (~0.2 s a command). compileall writes the caches whatever that variable says.
.venv/bin/python -m compileall -q controller tests
.venv/bin/python -m pytest "$@"
