# The two commands (see README):
#   make run   install what running needs (app, server, local model) and open the app
#   make test  install that plus every extra and the dev/test tools, and run the test suite
#   make test-fast  the suite without the slow and browser tests (under a minute)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-run run demo test test-fast lint bench bench-full clean

$(RUN_STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)" run
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)" test
	touch $(TEST_STAMP) $(RUN_STAMP)

setup-run: $(RUN_STAMP)

setup: $(TEST_STAMP)

run: setup-run
	$(BIN)/sem-mem ui

demo: setup-run
	$(BIN)/python examples/quickstart.py

test: setup
	bash scripts/test.sh "$(VENV)"

test-fast: setup
	$(BIN)/python -m pytest -q -n auto -m "not slow and not browser"

lint: setup
	$(BIN)/ruff check sem_mem tests bench examples
	$(BIN)/ruff format --check sem_mem tests bench examples

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
