# Entry points. Every target installs what it needs first, so a fresh clone needs only `make dev`
# or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install pgvector dev demo test bench lint migrate clean

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

test: install           ## lint, then the whole test suite
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: install          ## benchmarks; tables printed, JSON in tests/bench/results/
	$(PY) -m tests.bench

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf .collections .pytest_cache .ruff_cache
