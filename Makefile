# Two entry points for a fresh machine: `make demo` and `make test`. Each creates .venv itself.
# `make demo` installs only what smsgw needs to run; the test tools come with `make test` (a stamp each).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
RUNTIME := $(VENV)/.installed-runtime
TEST := $(VENV)/.installed-test

.PHONY: demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .
	touch $(RUNTIME)

$(TEST): pyproject.toml $(RUNTIME)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(TEST)

demo: $(RUNTIME)
	$(VENV)/bin/smsgw demo

test: $(TEST)
	$(VENV)/bin/python -m mypy smsgw
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: $(RUNTIME)
	$(VENV)/bin/python -m smsgw.bench all

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
