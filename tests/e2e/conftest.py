"""A real Celery worker process on the test database and Redis, with the demo model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
# The shared worker serves the free and standard lanes. Tests that control their own
# workers (crashes, races, cancellation) use paid plans, whose jobs go to the priority lane.
SHARED_LANES = "free,standard"
PRIORITY_LANE = "priority"


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The committed, trained demo model (models/atelier-demo)."""
    return Path(settings.BASE_DIR) / "models" / "atelier-demo"


def test_database_url() -> str:
    from django.db import connection

    return (
        urlparse(settings.DATABASE_URL)
        ._replace(path=f"/{connection.settings_dict['NAME']}")
        .geturl()
    )


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    hostname: str
    log: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    log_dir: Path, *, lanes: str = SHARED_LANES, queues: str = "", **env: str
) -> WorkerProcess:
    """Start `celery worker` for `lanes` (or other `queues`, with a thread pool, as the
    webhooks worker runs) and return once it is ready."""
    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log = log_dir / f"{hostname.split('@')[0]}.log"
    pool = ["--pool", "threads", "--concurrency", "4"] if queues else ["--pool", "solo"]
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", *pool,
            "--queues", queues or ",".join(f"gpu.{lane}" for lane in lanes.split(",")),
            "--hostname", hostname, "--loglevel", "INFO",
            "--without-mingle", "--without-gossip",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": test_database_url(), "WORKER_LANES": lanes, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    worker = WorkerProcess(process, hostname, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log.read_text()}")
        # The log, not a ping: a solo-pool worker busy with a job answers no pings.
        if f"{hostname} ready." in log.read_text(errors="replace"):
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"worker did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, demo_model: Path, worker_logs: Path
) -> Iterator[WorkerProcess]:
    worker = start_worker(worker_logs, GENERATION_MODEL=str(demo_model))
    yield worker
    worker.stop()


def wait_for_job(session: requests.Session, url: str, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = session.get(url, timeout=10).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job did not finish in {timeout} s: {job}")
