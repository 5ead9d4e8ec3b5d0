# Two commands for a fresh machine (Debian 12, Python 3.11, root):
#   make run   - set up, migrate the SQLite file, load the demo utility, serve on :8000
#   make test  - set up (PostgreSQL too) and run every test, lint and type check
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/gridwalk demo
	$(BIN)/gridwalk serve --host $(HOST) --port $(PORT)

test: setup
	scripts/test.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/sync_push.py

clean:
	rm -rf $(VENV) var test-artifacts
