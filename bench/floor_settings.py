"""The shipped settings, with bench/floor_urls.py's one extra view: bench-front-door serves the
stack's floor for a submission from a server of its own, the shipped configuration but for
this module (DJANGO_SETTINGS_MODULE=bench.floor_settings). Never deployed."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
