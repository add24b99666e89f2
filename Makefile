# Two commands set up a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install the project into it first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT    := DEBIAN_FRONTEND=noninteractive apt-get install -y -q

.PHONY: demo test test-minimal lint bench clean

# The system packages both installs need (the report's Graphviz and Chromium).
define SYSTEM_PACKAGES
	command -v dot >/dev/null || $(APT) graphviz || (apt-get update -q && $(APT) graphviz)
	command -v chromium >/dev/null || $(APT) chromium || (apt-get update -q && $(APT) chromium)
endef

$(STAMP): pyproject.toml
	# netpol report draws with Graphviz (dot) and its test opens the report in
	# headless Chromium: both from the distribution (Debian package names).
	# A stale package index is refreshed once, only if the first try fails.
	$(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netpol demo --out demo-out --force

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The suite from an install without the spark extra, run as bare `pytest`: the
# Spark tests are skipped with their reason, everything else must pass (CI runs both).
MIN_VENV  := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed

$(MIN_STAMP): pyproject.toml
	$(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(MIN_STAMP)

test-minimal: $(MIN_STAMP)
	$(MIN_VENV)/bin/pytest -q -n 2 --dist loadfile

# The same checks as .pre-commit-config.yaml.
lint: $(STAMP)
	$(BIN)/ruff check recommender tests bench cli.py conftest.py
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(MIN_VENV) demo-out
