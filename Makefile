# Two commands set up a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install the project into it first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT    := DEBIAN_FRONTEND=noninteractive apt-get install -y -q

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	# netpol report draws with Graphviz (dot) and its test opens the report in
	# headless Chromium: both from the distribution (Debian package names).
	# A stale package index is refreshed once, only if the first try fails.
	command -v dot >/dev/null || $(APT) graphviz || (apt-get update -q && $(APT) graphviz)
	command -v chromium >/dev/null || $(APT) chromium || (apt-get update -q && $(APT) chromium)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netpol demo --out demo-out --force

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check recommender tests cli.py
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo-out
