# The two commands of the README: `make book` and `make test`.
# Everything runs inside a virtual environment ($(VENV)) holding the pinned stack.

# Python 3.11 (the tested version); any python3 >= 3.11 is accepted.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
BUILD := _build
STAMP := $(VENV)/.mlmci-installed

# PyTensor links a BLAS for speed and prints a warning without one (Debian: libopenblas-dev).
export PYTENSOR_FLAGS ?= blas__ldflags=-lopenblas

.PHONY: help install book rebuild test lint format browser-test lab clean

help:
	@echo "make book          install, execute every chapter and build the HTML into $(BUILD)/html"
	@echo "make test          install, lint, and run the test suite (no network, no built book needed)"
	@echo "make browser-test  open every built page in headless Chromium (after make book)"
	@echo "make lab           open the chapters as notebooks in JupyterLab"
	@echo "make clean         remove $(BUILD) (the execution cache included)"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "Python 3.11 not found (PYTHON=$(PYTHON)): on Debian 12, apt-get install python3.11 python3.11-venv; or make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going || exit $$?; \
	end=$$(date +%s); \
	echo ""; \
	echo "Chapter execution times (s):"; \
	$(BIN)/python -c "import json; [print(f\"  {r['chapter']:<40} {r['seconds']:7.1f}  {'executed' if r['executed_now'] else 'cached'}{'  OVER BUDGET' if r['over_budget'] else ''}\") for r in json.load(open('$(BUILD)/timings.json'))]"; \
	echo "Book built in $$((end - start)) s. Open $(CURDIR)/$(BUILD)/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not browser" --durations=10 --doctest-modules mlmci tests

browser-test: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lab: $(STAMP)
	$(BIN)/jupyter lab book/

clean:
	rm -rf $(BUILD)
