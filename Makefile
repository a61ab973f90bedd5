# burgernet-bot: `make run` serves everything on SQLite with the simulator; `make test` checks everything.
# Both set themselves up on a fresh machine (Python 3.11 needed; the venv and packages are made here).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test lint typecheck unit unit-postgres install migrate bench nlu-eval console clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import fastapi, sqlmodel, telegram, twilio, sklearn, apscheduler"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) run_bot.py migrate

run: migrate
	$(PY) run_bot.py serve

console: migrate
	$(PY) run_bot.py console

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# The same suite again on PostgreSQL: TEST_POSTGRES_URL, else a throw-away server on loopback when the
# PostgreSQL binaries are here (.ci/run installs them); required in CI, skipped with a note elsewhere.
# The real-Rasa tests do not touch the database: they run once, in the SQLite run.
unit-postgres: install
	@url="$(TEST_POSTGRES_URL)"; \
	if [ -z "$$url" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then url=$$(scripts/pg_test_server.sh start); fi; \
	if [ -n "$$url" ]; then \
	  echo "== test suite on PostgreSQL ($$url)"; DATABASE_URL="$$url" $(VENV)/bin/pytest -q -p no:cacheprovider -m "not rasa" $(PYTEST_ARGS); \
	elif [ "$(CI)" = "true" ]; then echo "CI needs PostgreSQL: apt-get install postgresql" >&2; exit 1; \
	else echo "== PostgreSQL not installed here: the PostgreSQL run is skipped (CI runs it)"; fi

test: lint typecheck unit unit-postgres

bench: install
	$(PY) -m bench

nlu-eval: install
	$(PY) -m nlu.evaluate

include mk/rasa.mk

clean:
	rm -rf $(VENV) .rasa-venv .mypy_cache .ruff_cache .pytest_cache
