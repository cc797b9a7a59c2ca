# lakeless: `make demo` runs the main job, `make test` runs lint and every test.
# Both install what they need first (`make setup`, idempotent).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS := infra/target/kafka-libs
JARS_STAMP := $(JARS)/.complete
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help setup demo test lint format unit integration bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) $(JARS_STAMP) system-packages  ## Install everything (virtualenv, Kafka jars, Mosquitto)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,train]'
	touch $@

$(JARS_STAMP): infra/pom.xml
	rm -rf $(JARS)
	mvn --batch-mode --quiet -f infra/pom.xml package
	touch $@

.PHONY: system-packages
system-packages:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  echo "installing Debian's mosquitto"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql (the twin's PostgreSQL tests start a throwaway cluster)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; }
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium (the dashboard's browser test drives it with Playwright)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

demo: setup  ## Run the main job (DEMO_ARGS="--duration 60" to stop by itself)
	$(VENV)/bin/lakeless demo $(DEMO_ARGS)

lint: setup  ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

format: setup  ## Format the code
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

unit: setup  ## Unit tests only (no processes started)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

integration: setup  ## Tests against a real Kafka broker and Mosquitto
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

test: setup lint  ## Lint, then the whole test suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:  ## Remove the virtualenv, jars and local stack data
	rm -rf $(VENV) infra/target .lakeless
