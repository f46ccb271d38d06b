# Scoregate: two commands on a fresh machine.
#   make run    set up everything, then run the demo on the embedded default
#   make test   set up everything, then run every test (Maven, lint, pytest)
# Set-up is idempotent: each step leaves a stamp in .stamps/ and reruns only when its inputs change.

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
MVN         := mvn -B --no-transfer-progress
STAMPS      := .stamps
DEMO_DIR    := build/demo
HAZELCAST_VERSION := 5.7.0
# The member jar, copied out of the local Maven repository to a fixed place for tests and the demo.
HAZELCAST_JAR := build/jars/hazelcast-$(HAZELCAST_VERSION).jar
DURATION    ?= 20
THREADS     ?= 4
AD_SERVER_JAR := jvm_bridge/ad-server/target/scoregate-ad-server.jar

JAVA_SOURCES := $(shell find jvm_bridge perf -name '*.java' -not -path '*/target/*' 2>/dev/null)
POMS         := $(shell find . -name pom.xml -not -path './.venv/*' -not -path '*/target/*' -not -path './build/*' 2>/dev/null)
MODEL_SOURCES := $(shell find models -name '*.py' 2>/dev/null)

.PHONY: setup run test test-java test-python lint perf-quick clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    - set up (venv, Maven build, Hazelcast jar, demo models), run the Python demo, then the"
	@echo "             reference Java ad server through the in-process bridge (DURATION=20 s each, THREADS=4)"
	@echo "make test   - set up, then Maven tests, ruff + mypy, and pytest"
	@echo "make setup  - set-up only (idempotent)"
	@echo "make perf-quick - every perf suite in --quick mode"

setup: $(STAMPS)/venv $(STAMPS)/maven $(STAMPS)/demo

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	@touch $@

$(STAMPS)/maven: $(POMS) $(JAVA_SOURCES)
	@mkdir -p $(STAMPS)
	$(MVN) -q install -DskipTests
	$(MVN) -q -N org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy \
		-Dartifact=com.hazelcast:hazelcast:$(HAZELCAST_VERSION) -DoutputDirectory=build/jars
	@test -f $(HAZELCAST_JAR) || { echo "Hazelcast member jar missing: $(HAZELCAST_JAR)"; exit 1; }
	@touch $@

$(STAMPS)/demo: $(STAMPS)/venv $(MODEL_SOURCES)
	@mkdir -p $(STAMPS)
	$(PY) -m models.demo build --out $(DEMO_DIR)
	@touch $@

# The Python-only demo, then the reference Java ad server scoring through the in-process bridge.
run: setup
	$(PY) -m gateway demo --demo-dir $(DEMO_DIR) --duration $(DURATION)
	$(PY) -m gateway serve --models $(DEMO_DIR)/models --classpath $(AD_SERVER_JAR) \
		--jvm-main dev.scoregate.adserver.AdServerMain -- \
		--export $(DEMO_DIR)/export --duration $(DURATION) --threads $(THREADS)

test-java: $(STAMPS)/maven
	$(MVN) test

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-python: setup
	$(PY) -m pytest

# pytest runs last so that its closing line is the last line printed.
test: setup test-java lint test-python

perf-quick: setup
	$(PY) -m perf run scoring --quick

clean:
	rm -rf $(STAMPS) build .mypy_cache .ruff_cache .pytest_cache
	$(MVN) -q clean
