"""manage.py worker_health: 0 while this host's worker reports alive, 1 once it stops."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from django.conf import settings
from django.core.management import call_command

from generation.queue import WORKERS_KEY, worker_alive


def test_worker_health_passes_while_the_worker_reports_and_fails_after() -> None:
    host = socket.gethostname()
    with pytest.raises(SystemExit) as nobody:
        call_command("worker_health")
    assert nobody.value.code == 1

    worker_alive(f"{host}:4242", ["free"])
    call_command("worker_health")  # returns: exit 0

    # Its last report is older than the allowed age: a hung or dead worker.
    redis.Redis.from_url(settings.REDIS_URL).zadd(WORKERS_KEY, {f"{host}:4242": time.time() - 90})
    with pytest.raises(SystemExit) as silent:
        call_command("worker_health", max_age=60)
    assert silent.value.code == 1
