# The two commands (see README): `make run` and `make test`. Each sets itself up.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test admin lint format bench-admission bench-worker bench-overload bench-queue \
	bench-front-door

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) platform/launch.py run

# The browser tests drive Debian's Chromium (never a downloaded browser build).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update && apt-get install -y chromium

# The alert rules' tests and the real scrape use Debian's Prometheus (promtool, prometheus).
PROMTOOL := /usr/bin/promtool

$(PROMTOOL):
	apt-get update && apt-get install -y --no-install-recommends prometheus

test: $(STAMP) $(CHROMIUM) $(PROMTOOL)
	$(PY) platform/launch.py test -- $(PY) -m pytest $(PYTEST_ARGS)

admin: $(STAMP)
	$(PY) platform/launch.py manage createsuperuser

# ruff; the layers (import-linter, contracts in pyproject.toml); types where they pay (mypy
# on the services, selectors and the worker; it reads the settings, hence DEBUG).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DEBUG=true $(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks (not tests): each runs on its own embedded services under var/bench.
bench-admission: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/api_admission.py

bench-worker: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/worker_throughput.py

bench-overload: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/overload.py

bench-queue: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/queue_depth.py

# The front-door benchmark drives the servers with Debian's wrk.
WRK := /usr/bin/wrk

$(WRK):
	apt-get update && apt-get install -y wrk

bench-front-door: $(STAMP) $(WRK)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/front_door.py
