# Developer entry points. Needs only python3 and PostgreSQL binaries (or DATABASE_URL):
# scripts/dbenv.py finds a server, or starts a private one in .pgdata/.
VENV := .venv
# $(call dbenv,NAME): set DATABASE_URL for database NAME; the recipe stops if dbenv fails.
dbenv = url=$$(python3 scripts/dbenv.py --dbname $(1)) && DATABASE_URL="$$url"

.PHONY: venv test demo bench screenshots lint format pg-stop clean

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

demo: venv
	$(call dbenv,dpq_demo) $(VENV)/bin/python demo_project/run_demo.py

bench: venv
	$(call dbenv,dpq_bench) $(VENV)/bin/python bench/run.py $(BENCH_ARGS)

screenshots: venv
	$(call dbenv,dpq_screens) $(VENV)/bin/python scripts/screenshots.py

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

pg-stop:
	python3 scripts/dbenv.py stop

clean:
	rm -rf $(VENV) bench/.venv-original
