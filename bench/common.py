"""Helpers shared by the benchmarks: a gunicorn server and a concurrent HTTP load."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The servers and workers run as production runs them (DEBUG off: no per-query recording, no debug
# pages), over plain HTTP on loopback. `make bench-*` starts under launch.py test, whose
# DEBUG=true is for the benchmark's own process only.
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_COOKIES": "false",
}


@contextmanager
def gunicorn(
    *,
    workers: int = 2,
    app: str = "config.asgi",
    args: tuple[str, ...] = ("--config", str(ROOT / "platform" / "gunicorn.conf.py")),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The real web server, by default as shipped (the project's gunicorn config), on a free port.

    `app`, `args` and `env` describe another configuration (bench/front_door.py's reference).
    """
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", app, *args,
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--access-logfile", "/dev/null",
        ],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION, "LOG_LEVEL": "ERROR", **(env or {})},
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/api/v1/me", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


def run_load(
    send: Callable[[requests.Session, int], requests.Response], *, total: int, concurrency: int
) -> LoadResult:
    """Send `total` requests from `concurrency` threads, each with a keep-alive session."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            start = time.perf_counter()
            response = send(session, n)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(total, time.perf_counter() - start, latencies, statuses)
