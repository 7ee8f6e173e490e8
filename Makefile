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

.PHONY: help install book rebuild test lint format browser-test bench lab clean

help:
	@echo "make book          install, execute every chapter and build the HTML into $(BUILD)/html"
	@echo "make test          install, lint, and run the test suite (no network, no built book needed)"
	@echo "make browser-test  open every built page in headless Chromium (after make book)"
	@echo "make bench         time mlmci.mixed against lme4 (needs Rscript + lme4; not part of CI)"
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
	$(BIN)/python .ci/report_timings.py $(BUILD) --cells 10; \
	echo "Book built in $$((end - start)) s. Open $(CURDIR)/$(BUILD)/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -m "not browser" -n auto --dist loadscope --no-loadscope-reorder --durations=15 --doctest-modules mlmci tests; \
	status=$$?; echo "make test: pytest took $$(( $$(date +%s) - start )) s (budget 300 s, DESIGN.md)"; exit $$status

browser-test: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/test_browser.py

bench: $(STAMP)
	$(BIN)/python benchmarks/mixed_vs_lme4.py
	$(BIN)/python benchmarks/bayes_parametrization.py

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
