# The README's two commands: `make run` and `make test`. Both set everything up first:
# the bot's environment (Python 3.12, .venv) and Rasa's (Python 3.10, rasa_project/.venv),
# each from its own lock file.
SHELL := /bin/bash
PYTHON ?= python3.12
RASA_PYTHON ?= python3.10
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RASA_VENV := rasa_project/.venv
BOT := $(VENV)/bin/bot
export UV_PYTHON_DOWNLOADS := never
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: run test model bench setup clean

run: model
	$(BOT) run

# The bot's suite (Python 3.12), then the model server's own tests in Rasa's environment.
test: model
	$(VENV)/bin/ruff check bot connectors standins tests bench
	$(VENV)/bin/mypy bot connectors
	tests/with_postgres.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	cd rasa_project && .venv/bin/python -m pytest -q -p no:cacheprovider

bench: model
	$(VENV)/bin/python bench/run_all.py

setup: $(VENV)/.synced $(RASA_VENV)/.synced

model: setup
	$(BOT) train

$(UV):
	@command -v $(PYTHON) >/dev/null && $(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
	  || { echo "make: Python 3.12 is needed for the bot; set PYTHON=/path/to/python3.12" >&2; exit 2; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

$(RASA_VENV)/.synced: rasa_project/pyproject.toml rasa_project/uv.lock | $(UV)
	@command -v $(RASA_PYTHON) >/dev/null && $(RASA_PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10)' \
	  || { echo "make: Python 3.10 is needed for Rasa 3.6 (it supports nothing newer); set RASA_PYTHON=/path/to/python3.10" >&2; exit 2; }
	$(UV) sync --frozen --compile-bytecode --project rasa_project --python $(RASA_PYTHON)
	touch $@

clean:
	rm -rf $(VENV) $(RASA_VENV) $(TOOLS) rasa_project/models rasa_project/.rasa
