# burgernet-bot: `make run` serves everything on SQLite with the simulator; `make test` checks everything.
# Both set themselves up on a fresh machine (Python 3.11 needed; the venv and packages are made here).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
LOCK_VENV := .lock-venv
LOCK_ARGS ?=
PYTEST_ARGS ?=
# The suite runs on this many cores (pytest-xdist), one test file per worker.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

.PHONY: run test lint typecheck unit unit-postgres install lock migrate bench nlu-eval console clean

# Installs exactly what requirements.lock pins (runtime and dev, every file checked against its hash),
# then the project itself without resolving anything again: a fresh machine gets what CI tested.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK) 2>$(VENV)/pip.log \
	  || { grep -v "^WARNING: Location" $(VENV)/pip.log >&2; exit 1; }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import fastapi, sqlmodel, telegram, twilio, sklearn, apscheduler"
	touch $(STAMP)

install: $(STAMP)

# After a change of pyproject.toml's dependencies: resolves them for Python 3.11 with their hashes into
# requirements.lock, keeping the versions pinned there where they still fit (`make lock LOCK_ARGS=--upgrade`
# takes the newest releases instead), with pip-tools in a venv of its own. Commit the result.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --disable-pip-version-check pip-tools 2>&1 | grep -v "^WARNING: Location" || true
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
	  --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml 2>&1 | grep -v "WARNING: Location" || true
	rm -rf $(LOCK_VENV)

migrate: install
	$(PY) run_bot.py migrate

run: migrate
	$(PY) run_bot.py serve

console: migrate
	$(PY) run_bot.py console

# ruff, then the import contracts of pyproject.toml's [tool.importlinter] (layers, no circles, providers).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

# Tests marked serial time what several processes do together: they run alone, after the rest (exit 5:
# PYTEST_ARGS picked none of them).
unit: install
	$(VENV)/bin/pytest -q $(XDIST) -m "not serial" $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The tests that touch a database again on PostgreSQL (tests/conftest.py picks them): TEST_POSTGRES_URL,
# else a throw-away server on loopback when the PostgreSQL binaries are here (.ci/run installs them);
# required in CI, skipped with a note elsewhere.
# The real-Rasa and browser tests run once, in the SQLite run.
unit-postgres: install
	@url="$(TEST_POSTGRES_URL)"; \
	if [ -z "$$url" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then url=$$(scripts/pg_test_server.sh start); fi; \
	if [ -n "$$url" ]; then \
	  echo "== test suite on PostgreSQL ($$url)"; DATABASE_URL="$$url" $(VENV)/bin/pytest -q -p no:cacheprovider -m "not rasa and not serial" $(XDIST) $(PYTEST_ARGS) \
	    && { DATABASE_URL="$$url" $(VENV)/bin/pytest -q -p no:cacheprovider -m "serial and not rasa" $(PYTEST_ARGS) || [ $$? -eq 5 ]; }; \
	elif [ "$(CI)" = "true" ]; then echo "CI needs PostgreSQL: apt-get install postgresql" >&2; exit 1; \
	else echo "== PostgreSQL not installed here: the PostgreSQL run is skipped (CI runs it)"; fi

test: lint typecheck unit unit-postgres

bench: install
	$(PY) -m bench

nlu-eval: install
	$(PY) -m nlu.evaluate

include mk/rasa.mk

clean:
	rm -rf $(VENV) $(LOCK_VENV) .rasa-venv .mypy_cache .ruff_cache .pytest_cache
