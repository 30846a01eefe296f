# Operator and developer commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= espsrc

# What the program and the offline plan need at run time.
RUN_REQUIREMENTS := requirements.txt $(wildcard policy/requirements.txt)

.PHONY: test lint typecheck unit plan verify new-site bench docs test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: install again only when a requirements file changed.
$(VENV)/.installed-run: $(RUN_REQUIREMENTS) | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check $(addprefix -r ,$(RUN_REQUIREMENTS))
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-run
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

test-deps:
	bash tools/install-test-deps.sh e2e haproxy login

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test: $(VENV)/.installed-dev test-deps lint typecheck unit

# ARGS passes options through; `@` keeps make from echoing a line that may hold them.
plan: $(VENV)/.installed-run
	@$(BIN)/python -m sitectl plan $(STACK) $(if $(POLICY_CONFIG),--policy-config $(POLICY_CONFIG)) $(ARGS)

# The deployed site, checked from here (README, "After deploying").
verify: $(VENV)/.installed-run
	@$(BIN)/python -m sitectl verify $(STACK) $(ARGS)

# A stack file for a new site, from the template: fill its "<fill in>" values, then plan.
new-site: $(VENV)/.installed-run
	@if [[ "$(origin STACK)" != "command line" ]]; then \
		echo "usage: make new-site STACK=<name>" >&2; exit 2; fi
	@# The name reaches the command through the environment, never the shell's parser.
	$(BIN)/python -m sitectl new-site -- "$$STACK"

# The config reference, docs/config.md, from the site config model (a test keeps it current).
docs: $(VENV)/.installed-run
	$(BIN)/python -m sitectl config-reference

# Plan cost against the import floor and the bare SDK, at 3/30/300 nodes: docs/benchmarks.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m tools.bench

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
