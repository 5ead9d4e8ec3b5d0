# Two commands for a fresh machine (Debian 12, Python 3.11, root):
#   make run   - set up, migrate the SQLite file, load the demo utility, serve on :8000
#   make test  - set up (PostgreSQL too) and run every test, lint and type check
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB := server/web
WEB_STAMP := $(WEB)/node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup cjk-font run test e2e lint bench clean

setup: $(STAMP) $(WEB_STAMP) cjk-font

# The handheld and the screenshots write Chinese: a font with its glyphs, from Debian when the
# machine has none (root only; otherwise the handheld says how to get one).
cjk-font:
	@{ command -v fc-list >/dev/null && fc-list :lang=zh-cn | grep -q .; } || { [ "$$(id -u)" = 0 ] && \
	  { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends fontconfig fonts-wqy-microhei; }; } || \
	  echo "setup: no Chinese font: apt-get install fonts-wqy-microhei (the handheld shows boxes)" >&2

# Debian's own python3.11 has no venv/ensurepip until python3.11-venv is installed (root only).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends $(notdir $(PYTHON))-venv; } || \
	  { echo "setup: $(PYTHON) cannot make a venv: apt-get install $(notdir $(PYTHON))-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,handheld]'
	touch $(STAMP)

# Leaflet for the audit page, from npm into server/web/node_modules: the page is served with
# no CDN, as desks may have no internet. npm comes from Debian when missing (root only).
$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; } || \
	  { echo "setup: npm is missing: apt-get install npm" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --ignore-scripts
	touch $(WEB_STAMP)

run: setup
	$(BIN)/gridwalk demo
	$(BIN)/gridwalk serve --host $(HOST) --port $(PORT)

test: setup
	scripts/test.sh

# The browser tests alone (headless Chromium; scripts/test.sh installs it when root).
e2e: setup
	scripts/test.sh tests/e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every bench on SQLite and PostgreSQL, bounded (scripts/bench.sh; figures in var/bench/).
bench: setup
	scripts/bench.sh

clean:
	rm -rf $(VENV) var test-artifacts $(WEB)/node_modules
