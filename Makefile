# Two commands set up a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install the project into it first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	# netpol report draws with Graphviz (dot) and its test opens the report in
	# headless Chromium: both from the distribution (Debian package names).
	command -v dot || apt-get install -y graphviz
	command -v chromium || apt-get install -y chromium
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
