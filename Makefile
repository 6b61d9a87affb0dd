# Entry points. Every target installs what it needs first, so a fresh clone needs only `make dev`
# or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# System packages come from apt: as root directly, otherwise through sudo (CI runners have it).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install pgvector test-deps browser-deps dev demo test bench lint migrate clean

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lambda,infra,dev]'
	touch $(STAMP)

# The wheel's pgvector is built for AVX-512 CPUs only; rebuild it portable once (see the script).
pgvector: $(STAMP)
	bash services/local/portable_pgvector.sh $(PY)

install: $(STAMP) pgvector

dev: install            ## run the whole service locally (embedded PostgreSQL, moto, API on :8000)
	$(VENV)/bin/collections dev

demo: install           ## upload sample images to a running `make dev` and search them
	$(VENV)/bin/collections demo

migrate: install        ## apply database migrations to DATABASE_URL (or the embedded server)
	$(VENV)/bin/collections migrate

# PgBouncer stands in for RDS Proxy in tests/services/test_pooler.py (Debian puts it in /usr/sbin).
test-deps:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y pgbouncer)

test: install test-deps browser-deps ## lint, then the whole test suite
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Browser tests: Debian's chromium (Playwright drives it; no browser download) and axe-core from npm,
# pinned by tests/e2e/web/package-lock.json into tests/e2e/web/node_modules (gitignored).
AXE_STAMP := tests/e2e/web/node_modules/.package-lock.json

$(AXE_STAMP): tests/e2e/web/package-lock.json
	npm ci --prefix tests/e2e/web --no-audit --no-fund

browser-deps: $(AXE_STAMP)
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

bench: install          ## benchmarks; tables printed, JSON in tests/bench/results/
	$(PY) -m tests.bench

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf .collections .pytest_cache .ruff_cache
