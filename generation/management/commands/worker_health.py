"""manage.py worker_health: exit 0 while this host's GPU worker reports alive, else 1.

For a container's or systemd's health check beside `celery worker`: the worker reports
alive in Redis every WORKER_ALIVE_INTERVAL seconds (from a thread, once its model is
loaded), so a worker that hangs, died or cannot reach Redis stops passing.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generation.queue import worker_last_seen


class Command(BaseCommand):
    help = "Exit 0 if a worker on this host reported alive recently, else 1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default=socket.gethostname(), help="the worker's host name (default: this)"
        )
        parser.add_argument(
            "--max-age",
            type=float,
            default=settings.WORKER_ALIVE_TIMEOUT,
            help="seconds since its last report (default: WORKER_ALIVE_TIMEOUT)",
        )

    def handle(self, *args: Any, host: str, max_age: float, **options: Any) -> None:
        try:
            seen = worker_last_seen(f"{host}:")
        except Exception as exc:
            self.stderr.write(f"unhealthy: Redis unreachable ({type(exc).__name__})")
            raise SystemExit(1) from None
        if seen is None:
            self.stderr.write(f"unhealthy: no worker on {host} has reported alive")
            raise SystemExit(1)
        age = time.time() - seen
        if age > max_age:
            self.stderr.write(f"unhealthy: the worker on {host} last reported {age:.0f} s ago")
            raise SystemExit(1)
        self.stdout.write(f"healthy: the worker on {host} reported {age:.1f} s ago")
