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

# setuptools prints a warning block for every editable install, which a new user cannot act on.
QUIET_PIP := PYTHONWARNINGS=ignore $(VENV)/bin/pip install --quiet

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(QUIET_PIP) -e .
	touch $(RUNTIME)

$(TEST): pyproject.toml $(RUNTIME)
	$(QUIET_PIP) -e '.[test]'
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
