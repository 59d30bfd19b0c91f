# The README's two commands: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3.10
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BOT := $(VENV)/bin/bot
export UV_PYTHON_DOWNLOADS := never
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: run test model bench setup clean

run: model
	$(BOT) run

test: model
	tests/with_postgres.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: model
	$(VENV)/bin/python bench/run_all.py

setup: $(VENV)/.synced

model: setup
	$(BOT) train

$(UV):
	@command -v $(PYTHON) >/dev/null && $(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10)' \
	  || { echo "make: Python 3.10 is needed (Rasa 3.6 supports nothing newer); set PYTHON=/path/to/python3.10" >&2; exit 2; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) rasa_project/models rasa_project/.rasa
