"""The floor under a submission's rate: bench/floor_urls.py's view, served for the benchmarks.

`make bench-front-door` and `make bench-admission` run it beside the real submission: a server
in the shipped configuration but for its settings module (bench/floor_settings.py, one view
more), answering `POST /bench/floor` with the same body as `POST /api/v1/generations`."""

from __future__ import annotations

import contextlib

from django.db import connection

from bench.common import gunicorn

FLOOR_PATH = "/bench/floor"
FLOOR_REQUEST_ID = "bench-floor"  # on each of the floor's jobs, so that they can be deleted


def floor_server() -> contextlib.AbstractContextManager[str]:
    """The shipped configuration with the floor's view: its base URL."""
    return gunicorn(env={"DJANGO_SETTINGS_MODULE": "bench.floor_settings"})


def floor_jobs_delete(answered: int) -> None:
    """The floor's jobs out of the queue (never stamped, they are no worker's to claim), after
    checking that each of its `answered` 202s wrote its job."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM generation_job WHERE request_id = %s", [FLOOR_REQUEST_ID])
        if cursor.rowcount < answered:
            raise SystemExit(f"the floor answered {answered} but wrote {cursor.rowcount} jobs")
