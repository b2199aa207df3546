#!/usr/bin/env bash
# Run the whole test suite inside the project's virtualenv.
set -euo pipefail
VENV=${1:-.venv}
"$VENV/bin/ruff" check sem_mem tests bench examples
"$VENV/bin/python" -m pytest -q
