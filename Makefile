# Developer entry points. Needs only python3 and PostgreSQL binaries (or DATABASE_URL):
# scripts/dbenv.py finds a server, or starts a private one in .pgdata/.
VENV := .venv
# $(call dbenv,NAME): set DATABASE_URL for database NAME; the recipe stops if dbenv fails.
dbenv = url=$$(python3 scripts/dbenv.py --dbname $(1)) && DATABASE_URL="$$url"

.PHONY: venv test test-fast test-matrix matrix-clean demo bench screenshots lint format pg-stop clean

venv: $(VENV)/.installed

# Re-install only when pyproject.toml changed since the last install.
$(VENV)/.installed: pyproject.toml
	@echo "Setting up .venv (python3 -m venv, pip install -e .[dev]) ..."
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

test: venv
	$(call dbenv,dpq) $(VENV)/bin/pytest $(PYTEST_ARGS)

# Everything but the tests that start real worker processes (slow) or drive chromium (browser).
test-fast: venv
	$(call dbenv,dpq) $(VENV)/bin/pytest -m "not slow and not browser" $(PYTEST_ARGS)

# Django 5.2 and 6.1, each with psycopg2 and with psycopg 3, in virtualenvs under .matrix/; the
# Django 6.1 legs run in a Debian 13 root (Python 3.13) and need root. See scripts/matrix.sh.
test-matrix:
	scripts/matrix.sh $(PYTEST_ARGS)

# The root and the legs' virtualenvs; refused while anything is mounted under .matrix/.
matrix-clean:
	@if awk -v d="$(CURDIR)/.matrix/" 'index($$2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then \
		echo "something is still mounted under .matrix/ (see /proc/mounts): not deleting it" >&2; exit 1; fi
	rm -rf .matrix

demo: venv
	$(call dbenv,dpq_demo) $(VENV)/bin/python demo_project/run_demo.py

# BENCH_PYTHON: the Python (and so the driver) to measure with, e.g. a psycopg 3 leg's
# .matrix/venv-dj52-psycopg3/bin/python (make test-matrix MATRIX_LEGS=dj52-psycopg3 builds it).
BENCH_PYTHON ?= $(VENV)/bin/python
bench: venv
	$(call dbenv,dpq_bench) $(BENCH_PYTHON) bench/run.py $(BENCH_ARGS)

screenshots: venv
	$(call dbenv,dpq_screens) $(VENV)/bin/python scripts/screenshots.py

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

pg-stop:
	python3 scripts/dbenv.py stop

clean:
	rm -rf $(VENV) bench/.venv-original bench/.venv-tasks-db
