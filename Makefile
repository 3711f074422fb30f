# The two commands (see README): `make run` and `make test`. Each sets itself up.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test admin lint lint-messages messages format bench-admission bench-worker bench-worker-host \
	bench-gpu-worker bench-encoders bench-overload bench-queue bench-front-door bench-provenance

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Translations: locale/<language>/LC_MESSAGES/django.po is the source (in git); the .mo the
# server reads is compiled from it (never committed), with Debian's gettext.
MSGFMT := /usr/bin/msgfmt
PO := $(wildcard locale/*/LC_MESSAGES/django.po)
MO := $(PO:.po=.mo)
MAKEMESSAGES := DEBUG=true $(PY) manage.py makemessages --all --no-location --no-obsolete \
	--ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' \
	--ignore 'models/*' --ignore 'test-output/*'

$(MSGFMT):
	apt-get update && apt-get install -y gettext

locale/%/LC_MESSAGES/django.mo: locale/%/LC_MESSAGES/django.po | $(STAMP) $(MSGFMT)
	DEBUG=true $(PY) manage.py compilemessages --locale $* --ignore '.venv' --ignore 'var' \
		--ignore 'test-output'

# After changing marked strings: add them to every catalogue, then translate them there.
messages: $(STAMP) | $(MSGFMT)
	$(MAKEMESSAGES)

# OpenCV (the invisible watermark, generation/provenance.py) needs Debian's libGL and GLib.
LIBGL := /usr/lib/x86_64-linux-gnu/libGL.so.1

$(LIBGL):
	apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0

run: $(STAMP) $(MO) $(LIBGL)
	$(PY) platform/launch.py run

# The browser tests drive Debian's Chromium (never a downloaded browser build).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update && apt-get install -y chromium

# The alert rules' tests and the real scrape use Debian's Prometheus (promtool, prometheus).
PROMTOOL := /usr/bin/promtool

$(PROMTOOL):
	apt-get update && apt-get install -y --no-install-recommends prometheus

test: $(STAMP) $(CHROMIUM) $(PROMTOOL) $(MO) $(LIBGL)
	$(PY) platform/launch.py test -- $(PY) -m pytest $(PYTEST_ARGS)

admin: $(STAMP)
	$(PY) platform/launch.py manage createsuperuser

# ruff; the layers (import-linter, contracts in pyproject.toml); types where they pay (mypy
# on the services, selectors and the worker; it reads the settings, hence DEBUG); every
# marked string translated in every catalogue.
lint: $(STAMP) lint-messages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DEBUG=true $(VENV)/bin/mypy

# The catalogues hold every marked string (makemessages adds any new one, untranslated),
# none untranslated or fuzzy, and their placeholders match (msgfmt --check).
lint-messages: $(STAMP) | $(MSGFMT)
	sh platform/check_messages.sh "$(MAKEMESSAGES)" $(PO)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks (not tests): each runs on its own embedded services under var/bench.
bench-admission: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/api_admission.py

bench-worker: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/worker_throughput.py

bench-worker-host: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/worker_host.py

bench-encoders: $(STAMP)
	$(PY) bench/encoders.py

# Needs a CUDA GPU (not yet run on one); well under ten minutes.
bench-gpu-worker: $(STAMP)
	ATELIER_VAR_DIR=var/bench timeout 600 $(PY) platform/launch.py test -- $(PY) bench/gpu_worker.py

bench-overload: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/overload.py

bench-queue: $(STAMP)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/queue_depth.py

# What the watermark, the C2PA signature and the safety check add per image (no services).
bench-provenance: $(STAMP) $(LIBGL)
	ATELIER_VAR_DIR=var/bench DEBUG=true $(PY) bench/provenance.py

# The front-door benchmark drives the servers with Debian's wrk.
WRK := /usr/bin/wrk

$(WRK):
	apt-get update && apt-get install -y wrk

bench-front-door: $(STAMP) $(WRK)
	ATELIER_VAR_DIR=var/bench $(PY) platform/launch.py test -- $(PY) bench/front_door.py
