# Rasa for real (issue 5): included by the Makefile, which defines PY, VENV and `install`.
# Rasa Open Source 3.6.21 lives in its own venv, .rasa-venv (RASA_VENV overrides), see docs/rasa.md.
RASA_PORT ?= 5005

.PHONY: rasa rasa-venv rasa-train rasa-test rasa-bench rasa-eval

# Builds .rasa-venv once (~2 min, 2.5 GB); afterwards a no-op.
rasa-venv:
	scripts/rasa_venv.sh

# Trains nlu/ into nlu/models/nlu-<hash of the project files>.tar.gz unless that model exists.
rasa-train: install rasa-venv
	$(PY) -m nlu.rasa_server train

# Trains, then serves /model/parse on 127.0.0.1:$(RASA_PORT) in the foreground; run the bot with RASA_URL set.
rasa: install rasa-venv
	$(PY) -m nlu.rasa_server serve --host 127.0.0.1 --port $(RASA_PORT)

# Our RasaParser against the real server (intents and entities on a few sentences).
rasa-test: install rasa-venv
	$(VENV)/bin/pytest -q -m rasa tests/nlu/test_rasa_parser.py

# Latency of /model/parse through RasaParser, next to the built-in parser.
rasa-bench: install rasa-venv
	$(PY) -m bench.rasa_bench

# `make nlu-eval` with Rasa: the built-in parser and Rasa side by side on nlu/data/test.yml.
rasa-eval: install rasa-venv
	$(PY) -m nlu.rasa_server eval --host 127.0.0.1 --port $(RASA_PORT)
