"""A submission's cost in one process: POST /api/v1/generations through the WSGI handler.

Run inside the embedded services (not a test; one process, one core):

    .venv/bin/python platform/launch.py test -- .venv/bin/python bench/submit_profile.py [N]

Reports CPU ms per submission (this process: Django, DRF, the services, the drivers), wall ms,
SQL statements per submission (those Django runs, listed once for one submission; psycopg's
BEGIN and COMMIT are not among them), Redis round trips (calls that write to a socket,
pipelines counted once) and Redis commands (INFO commandstats). PROFILE=cpu (this process's
CPU time) or any other value (wall time) prints cProfile's top functions by their own and
cumulative time, or writes them to PROFILE_OUT; TIMERS=1 prints each step's inclusive CPU;
IDEMPOTENT=1 sends each submission with an Idempotency-Key of its own.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# As the benchmarks run the server: DEBUG off (no per-query recording), logs at ERROR.
os.environ.update(
    {
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "ERROR",
        # As platform/gunicorn.conf.py runs the web server: a pool, no health check per borrow.
        "DB_POOL_MAX_SIZE": os.environ.get("DB_POOL_MAX_SIZE", "8"),
        "DB_STATEMENT_TIMEOUT": "15",
    }
)

import django

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.front_door import BODY, new_key, unlimited_plan  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
WARM = 50


class RoundTrips:
    """Counts redis-py socket writes (a pipeline is one)."""

    def __init__(self) -> None:
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            return original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


# TIMERS=1: inclusive CPU time of the steps of a submission, each wrapped where it is called.
STEPS = [
    ("accounts.authentication", "ApiKeyAuthentication.authenticate"),
    ("generation.api", "plan_for"),
    ("generation.api", "GenerationSubmitMixin.validated"),
    ("generation.api", "job_request_admit"),
    ("generation.admission", "submit_rate_check"),
    ("generation.admission", "quota_status"),
    ("generation.admission", "policy_check"),
    ("generation.admission", "admission_check"),
    ("generation.admission", "request_fingerprint"),
    ("generation.admission", "job_submit"),
    ("generation.services", "job_stamp"),
    ("generation.services", "model_insert"),
    ("generation.services", "quota_reserve"),
    ("generation.services", "queue_index_add"),
    ("generation.services", "_enqueue"),
    ("generation.api", "GenerationSubmitMixin.admitted_response"),
    ("generation.api", "WorkspaceLimitsMixin.finalize_response"),
]


def step_timers() -> dict[str, list[float]]:
    import importlib

    totals: dict[str, list[float]] = {}
    for module_name, path in STEPS:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)
        total = totals.setdefault(path, [0.0, 0])

        def timed(*args: Any, _original: Any = original, _total: Any = total, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                _total[0] += time.process_time() - start
                _total[1] += 1

        setattr(owner, name, timed)
    return totals


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def environ(key: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/generations",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # IDEMPOTENT=1: each submission under a new Idempotency-Key, as careful clients send.
        **({"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex} if os.environ.get("IDEMPOTENT") else {}),
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    plan = unlimited_plan()
    tag = f"{os.getpid()}-{time.time_ns()}"
    key = new_key(f"profile-{tag}@example.com", plan)
    body = json.dumps(BODY).encode()
    handler = WSGIHandler()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    def submit() -> None:
        b"".join(handler(environ(key, body), start_response))

    for _ in range(WARM):
        submit()
    assert all(s.startswith("202") for s in statuses), statuses[:3]

    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        submit()
    print("SQL of one submission:")
    for sql in statements:
        print("  ", " ".join(sql.split())[:160])

    trips = RoundTrips()
    client = redis.Redis.from_url(settings.REDIS_URL)
    statuses.clear()
    count = [0]

    def counter(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        count[0] += 1
        return execute(sql, params, many, context)

    timers = step_timers() if os.environ.get("TIMERS") else {}
    commands = commandstats(client)
    trips.count = 0
    # PROFILE=wall: cProfile's clock (waits on the servers count); PROFILE=cpu: this process's
    # CPU time (waits count nothing, but the profiler's own cost weighs more).
    mode = os.environ.get("PROFILE", "")
    profiler = None
    if mode:
        profiler = cProfile.Profile(time.process_time) if mode == "cpu" else cProfile.Profile()
    with connection.execute_wrapper(counter):
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(N):
            submit()
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    own_trips = trips.count
    after = commandstats(client)
    per_command = {
        name: (calls - commands.get(name, 0)) / N
        for name, calls in after.items()
        if name != "info" and calls != commands.get(name, 0)
    }
    assert all(s.startswith("202") for s in statuses), [s for s in statuses if s[:3] != "202"][:3]
    print(
        f"N={N}  cpu {cpu / N * 1000:.3f} ms/submission  wall {wall / N * 1000:.3f} ms  "
        f"SQL {count[0] / N:.2f}/submission  Redis round trips {own_trips / N:.2f}  "
        f"Redis commands {sum(per_command.values()):.2f}"
    )
    print("Redis commands per submission:", {k: round(v, 2) for k, v in per_command.items()})
    for path, (seconds, calls) in timers.items():
        print(f"  {path:45s} {seconds / N * 1000:7.3f} ms/submission  ({calls / N:.0f} calls)")
    if profiler and os.environ.get("PROFILE_OUT"):
        profiler.dump_stats(os.environ["PROFILE_OUT"])
    elif profiler:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(45)
            print(out.getvalue())


if __name__ == "__main__":
    main()
