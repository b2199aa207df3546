#!/usr/bin/env bash
# Run the whole test suite inside the project's virtualenv (what `make test` and CI run).
# Extra arguments go to pytest.
set -euo pipefail
VENV=${1:-.venv}
shift || true
# the PostgreSQL half of the conformance suite must run, not skip (pgserver is in [dev])
export SEMMEM_REQUIRE_PG=${SEMMEM_REQUIRE_PG:-1}
# system packages the browser test drives (Chromium): installed here, never by a test
bash "$(dirname "$0")/test-setup.sh"
"$VENV/bin/ruff" check sem_mem tests bench examples
"$VENV/bin/ruff" format --check sem_mem tests bench examples
"$VENV/bin/mypy" sem_mem
"$VENV/bin/python" -m pytest -q "$@"
