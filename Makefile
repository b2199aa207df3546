# The two commands (see README):
#   make run   set everything up from a fresh clone and open the app (offline, local embeddings)
#   make test  set everything up and run the whole test suite
#   make test-fast  the suite without the slow and browser tests (under a minute)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run demo test test-fast lint bench bench-full clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/sem-mem ui

demo: setup
	$(BIN)/python examples/quickstart.py

test: setup
	bash scripts/test.sh "$(VENV)"

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: setup
	$(BIN)/ruff check sem_mem tests bench examples
	$(BIN)/ruff format --check sem_mem tests bench examples
	$(BIN)/python -m mypy sem_mem

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.recall_quality
	$(BIN)/python -m bench.embedder_speed
	$(BIN)/python -m bench.speed --quick
	$(BIN)/python -m bench.fulltext

bench-full: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.recall_quality --ablation
	$(BIN)/python -m bench.speed --full

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
