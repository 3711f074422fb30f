"""The shipped settings, with bench/floor_urls.py's two extra views: the benchmarks serve the
stack's floor for a submission, and the least admission, from a server of their own, the
shipped configuration but for this module (DJANGO_SETTINGS_MODULE=bench.floor_settings).
Never deployed."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
