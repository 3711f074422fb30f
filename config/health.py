"""/healthz (the process answers) and /readyz (it can serve: database, Redis, migrations).

A load balancer probes every node every second or so. /healthz touches nothing. /readyz
checks at most once per READYZ_CACHE_SECONDS per process (one `SELECT 1`, one Redis PING)
and answers from its last check in between; the migrations are read from disk once, then
only until the database has them all. It fails closed: any error is a 503 with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer: the process answers (touches no database)."""
    return HttpResponse(b"ok", content_type="text/plain")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # empty when ready
    checked_at: float


_lock = threading.Lock()
_last: Readiness | None = None
_migrations_applied = False


@cache
def _redis() -> redis.Redis:
    # Its own client with short timeouts: a probe must answer fast whatever Redis does.
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1, health_check_interval=0
    )


def _unapplied_migrations() -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _check() -> Readiness:
    started = time.monotonic()
    database = _database_check()
    if database.startswith("database: ") and time.monotonic() - started < 0.5:
        # A pooled connection that broke while the database was away fails at once and is
        # dropped; the next one says whether the database is away. (One that cannot be had
        # fails only after DB_POOL_TIMEOUT: no second wait for that.)
        database = _database_check()
    now = time.monotonic()
    if database:
        return Readiness(False, database, now)
    try:
        _redis().ping()
    except Exception as exc:
        return Readiness(False, f"redis: {type(exc).__name__}", now)
    return Readiness(True, "", now)


def _database_check() -> str:
    """Empty when the database answers and has every migration; else the reason."""
    global _migrations_applied
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrations_applied:
            unapplied = _unapplied_migrations()
            if unapplied:
                return f"migrations: {unapplied} not applied"
            _migrations_applied = True
    except Exception as exc:
        return f"database: {type(exc).__name__}"
    finally:
        if not connection.in_atomic_block:
            connection.close()  # give it back to the pool; a broken one is dropped
    return ""


def readiness() -> Readiness:
    """The last check, if recent enough, else a new one (one thread checks at a time)."""
    global _last
    with _lock:
        last = _last
        if last is None or time.monotonic() - last.checked_at >= settings.READYZ_CACHE_SECONDS:
            _last = last = _check()
            if not last.ready:
                logger.warning("Not ready: %s", last.reason)
        return last


def readyz(request: HttpRequest) -> JsonResponse:
    state = readiness()
    if state.ready:
        return JsonResponse({"status": "ready"})
    return JsonResponse({"status": "unavailable", "reason": state.reason}, status=503)
