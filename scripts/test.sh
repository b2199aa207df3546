#!/usr/bin/env bash
# Run the whole test suite inside the project's virtualenv.
set -euo pipefail
VENV=${1:-.venv}
# the PostgreSQL half of the conformance suite must run, not skip (pgserver is in [dev])
export SEMMEM_REQUIRE_PG=${SEMMEM_REQUIRE_PG:-1}
"$VENV/bin/ruff" check sem_mem tests bench examples
"$VENV/bin/python" -m pytest -q
