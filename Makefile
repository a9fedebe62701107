# HDS suite. `make run` starts the whole suite on the embedded default; `make test` runs
# every test against real PostgreSQL, a real S3-protocol server and a real SMTP server.
# Both install what they need first (a pinned uv in .tools/, then the locked environment).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: help install run test lint format bench bench-tools tools postgres redis clean

help:
	@echo "make run    start every service on the embedded default (SQLite, ./var)"
	@echo "make test   install, start what the tests need, run the whole test suite"
	@echo "make lint   ruff + mypy (strict) over the sources, tests/ and bench/"
	@echo "make bench  run the benchmarks under bench/"

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml libs/common/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard clients/*/pyproject.toml)
	$(UV) sync --frozen --all-packages --python $(shell command -v $(PYTHON))
	@touch $@

install: $(VENV)/.synced

run: install
	$(VENV)/bin/python deploy/local/run.py

# dciodvfy (Debian's dicom3tools) validates the DICOMDIR of every downloaded ZIP.
# Orthanc (Debian's orthanc) is the archive the ingest corpus test imports into; the test
# starts the binary itself with its own configuration in a private network namespace.
# The system service is never started: RUNLEVEL=1, and a policy-rc.d that denies every
# start for the time of the install where the machine has none.
tools:
	@command -v dciodvfy >/dev/null || { apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null; }
	@test -x /usr/sbin/Orthanc || { apt-get update -qq && policy=/usr/sbin/policy-rc.d made= && \
		if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy && made=1; fi; \
		RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc >/dev/null; status=$$?; \
		if [ -n "$$made" ]; then rm -f $$policy; fi; exit $$status; }

# nginx (Debian's nginx-light) is bench_gateway.py's reference hop; never started as a
# system service (RUNLEVEL=1 keeps the package from starting it).
bench-tools:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && \
		RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }

# PostgreSQL and Redis are part of the machine; start them if they are down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
		mkdir -p /var/lib/redis /var/log/redis && \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log && \
		for i in $$(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; }

# The tests start their own S3-protocol server (moto) and SMTP server (aiosmtpd) on
# 127.0.0.1 and stop them afterwards.
test: install tools postgres redis
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/common/src $(wildcard services/*/src) $(wildcard clients/*/src) tests bench

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install tools bench-tools postgres redis
	@for script in bench/bench_*.py; do \
		echo "== $$script"; $(VENV)/bin/python $$script || exit 1; done

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
