# churnstream: every target installs what it needs (venv, Python packages, Kafka jars).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install kafka-jars test unit lint demo bench soak kafka-up kafka-down clean prometheus

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "churnstream needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test,rocksdb]'
	@touch $@

# The jars are only needed for the local broker: skipped when a broker is configured
# (KAFKA_BOOTSTRAP_SERVERS) or a Docker daemon answers.
kafka-jars: install
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ] || timeout 3 docker info >/dev/null 2>&1; then \
		echo "broker: configured or Docker; local Kafka jars not needed"; \
	else $(VENV)/bin/churnstream kafka jars; fi

prometheus:
	bash deploy/install-prometheus.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

unit: install
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_ARGS)

# The whole suite against a real broker. The pytest script, not `python -m pytest`: the latter
# puts the checkout on sys.path, where `model`, `stream`, ... would import under their folder
# names instead of `churnstream.*`. pytest exits 5 when it collected no test: that is a
# failure here, like any other non-zero exit. Tests marked `long` (issue-sized runs of many
# minutes) run in `soak`. The broker tests mostly wait (on a worker, a deadline, a broker), so
# TEST_JOBS processes (pytest-xdist, one file each at a time, each with its own broker) share
# the 2 cores of CI well: the integration tests took 10.5 min with 3, about 35 without.
TEST_JOBS ?= 3
test: install kafka-jars
	-bash deploy/install-prometheus.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest -q -m "not long" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

demo: install kafka-jars
	$(PY) -m churnstream.stream.cli demo

bench: install kafka-jars
	$(PY) bench/run_all.py

# Reliability drills on a real broker (kill -9, rebalances, broker killed, retention gap,
# corrupt state, extreme records): RELIABILITY.md, exit 1 if a row fails; then the tests marked
# `long`. Not part of `test`.
# SOAK_ARGS=--long: the rebalance drill for 10 minutes; --quick: a smoke run.
SOAK_ARGS ?=
soak: install kafka-jars
	$(PY) bench/soak/run.py $(SOAK_ARGS)
	$(VENV)/bin/pytest -q -m long tests/integration

kafka-up: install kafka-jars
	$(PY) -m churnstream.stream.cli kafka start

kafka-down: install
	$(PY) -m churnstream.stream.cli kafka stop

clean:
	-$(PY) -m churnstream.stream.cli kafka stop
	rm -rf .churnstream .pytest_cache
