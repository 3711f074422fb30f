"""The floor under a submission's rate: bench/floor_urls.py's views, served for the benchmarks.

`make bench-front-door` and `make bench-admission` run the floor beside the real submission: a
server in the shipped configuration but for its settings module (bench/floor_settings.py, two
views more), answering `POST /bench/floor` with the same body as `POST /api/v1/generations`;
bench-front-door runs the least admission (`POST /bench/floor/least-admission`) beside them."""

from __future__ import annotations

import contextlib

from django.db import connection

from bench.common import gunicorn
from generation.queue import redis_client

FLOOR_PATH = "/bench/floor"
FLOOR_REQUEST_ID = "bench-floor"  # on each of the floor's jobs, so that they can be deleted
LEAST_ADMISSION_PATH = "/bench/floor/least-admission"
# The bound's place-index writes go to keys of its own, never the queue's.
LEAST_ADMISSION_JOBS_KEY = "atelier:bench-floor:jobs"
LEAST_ADMISSION_IMAGES_KEY = "atelier:bench-floor:images"


def floor_server() -> contextlib.AbstractContextManager[str]:
    """The shipped configuration with the floor's views: its base URL."""
    return gunicorn(env={"DJANGO_SETTINGS_MODULE": "bench.floor_settings"})


def floor_jobs_delete(answered: int) -> None:
    """The floor's jobs out of the queue (never stamped, they are no worker's to claim) and the
    bound's index keys out of Redis, after checking that each of the `answered` 202s (the
    floor's and the bound's) wrote its job."""
    redis_client().delete(LEAST_ADMISSION_JOBS_KEY, LEAST_ADMISSION_IMAGES_KEY)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM generation_job WHERE request_id = %s", [FLOOR_REQUEST_ID])
        if cursor.rowcount < answered:
            raise SystemExit(f"the floor answered {answered} but wrote {cursor.rowcount} jobs")
