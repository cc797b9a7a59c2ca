# lakeless: `make demo` runs the main job, `make test` runs lint and every test.
# Both install what they need first (`make setup`, idempotent).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS := infra/target/kafka-libs
JARS_STAMP := $(JARS)/.complete
# The JVM engines (jvm/): rebuilt when a pom or a source file changes.
JVM_STAMP := jvm/target/.built
JVM_SOURCES := $(shell find jvm -name pom.xml -o -path '*/src/*' -type f 2>/dev/null)
MVN := mvn --batch-mode --quiet
# deploy/k8s validated offline: Strimzi's CRD schemas (generated with a newer JDK), Kubernetes'
# own schemas (PyPI's kubernetes-validate wheel), kubeconform (go install, project-local).
K8S_BUILD := build/k8s
K8S_SCHEMAS := $(K8S_BUILD)/schemas
K8S_SCHEMAS_STAMP := $(K8S_SCHEMAS)/.complete
K8S_VERSION := v1.37.0
KUBERNETES_VALIDATE := kubernetes-validate==1.37.0
KUBECONFORM := build/tools/bin/kubeconform
STRIMZI_KINDS := kafka.Kafka nodepool.KafkaNodePool topic.KafkaTopic user.KafkaUser
# Strimzi 1.x's generator needs Java 21+: JAVA_NEW=/path/to/java to choose one.
JAVA_NEW ?= $(firstword $(wildcard /usr/lib/jvm/temurin-25-jdk-amd64/bin/java /usr/lib/jvm/java-25-*/bin/java /usr/lib/jvm/temurin-21-jdk-amd64/bin/java /usr/lib/jvm/java-21-*/bin/java))
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help setup demo test lint format unit integration jvm-test bench clean k8s-check

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) $(JARS_STAMP) $(JVM_STAMP) system-packages  ## Install everything (virtualenv, Kafka and JVM-module jars, Mosquitto)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,train]'
	touch $@

$(JARS_STAMP): infra/pom.xml
	rm -rf $(JARS)
	mvn --batch-mode --quiet -f infra/pom.xml package
	touch $@

$(JVM_STAMP): $(JVM_SOURCES)
	$(MVN) -f jvm/pom.xml clean package -DskipTests
	mkdir -p $(@D) && touch $@


$(KUBECONFORM):
	GOBIN=$(CURDIR)/$(@D) go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0

$(K8S_BUILD)/strimzi/.complete: deploy/k8s/check/pom.xml
	@test -n "$(JAVA_NEW)" || { echo "Strimzi's CRD generator needs Java 21+: set JAVA_NEW=/path/to/java"; exit 1; }
	rm -rf $(@D) && mkdir -p $(@D)
	$(MVN) -f deploy/k8s/check/pom.xml dependency:build-classpath -Dmdep.outputFile=$(CURDIR)/$(@D)/classpath.txt
	$(JAVA_NEW) -cp "$$(cat $(@D)/classpath.txt)" io.strimzi.crdgenerator.CrdGenerator \
	  --crd-api-version v1 --api-versions v1 --storage-version v1 \
	  $(foreach k,$(STRIMZI_KINDS),io.strimzi.api.kafka.model.$(k)=$(@D)/$(lastword $(subst ., ,$(k))).json)
	touch $@

$(K8S_BUILD)/$(subst ==,-,$(KUBERNETES_VALIDATE))/.complete:
	rm -rf $(@D) && mkdir -p $(@D)
	$(PY) -m pip download --quiet --no-deps --dest $(@D) '$(KUBERNETES_VALIDATE)'
	touch $@

$(K8S_SCHEMAS_STAMP): $(K8S_BUILD)/strimzi/.complete $(K8S_BUILD)/$(subst ==,-,$(KUBERNETES_VALIDATE))/.complete deploy/k8s/check/k8s_check.py | $(STAMP)
	rm -rf $(@D)
	$(PY) deploy/k8s/check/k8s_check.py schemas --crds $(K8S_BUILD)/strimzi \
	  --kubernetes-wheel $$(ls $(K8S_BUILD)/$(subst ==,-,$(KUBERNETES_VALIDATE))/*.whl) --kubernetes-version $(K8S_VERSION) --out $(@D)
	touch $@

k8s-check: $(KUBECONFORM) $(K8S_SCHEMAS_STAMP)  ## Validate deploy/k8s offline (Strimzi + Kubernetes schemas, unknown fields fail; lakeless commands and variables against the CLI)
	$(PY) deploy/k8s/check/k8s_check.py validate --kubeconform $(KUBECONFORM) --schemas $(K8S_SCHEMAS) deploy/k8s
	$(PY) deploy/k8s/check/lakeless_check.py deploy/k8s

.PHONY: system-packages
system-packages:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  echo "installing Debian's mosquitto"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v openssl >/dev/null || { \
	  echo "installing Debian's openssl (stack up --secure converts Mosquitto's TLS key with it)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openssl >/dev/null; }
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

jvm-test: setup  ## JVM modules' unit tests (vectors, TopologyTestDriver, the S3 plugin on s3proxy; the broker tests run in pytest)
	$(MVN) -f jvm/pom.xml test

test: setup lint jvm-test k8s-check  ## Lint, the JVM tests, the manifests (offline), then the whole test suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:  ## Remove the virtualenv, jars and local stack data
	rm -rf $(VENV) infra/target jvm/target jvm/*/target .lakeless
