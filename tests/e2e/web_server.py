"""The web server as shipped (gunicorn with platform/gunicorn.conf.py), started by a test.

It serves the test database, so the tests that use it are transactional.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import free_port
from tests.e2e.conftest import ROOT, test_database_url


@contextlib.contextmanager
def web_server(log: Path, *, workers: int = 2, **env: str) -> Iterator[str]:
    """gunicorn as the Procfile runs it, on a free port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.asgi",
            "--config", str(ROOT / "platform" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": test_database_url(), **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@dataclass
class Answer:
    status: int | None  # None: no answer before the client gave up
    headers: dict[str, str]
    body: dict[str, object] | None  # the JSON body, None if it was not JSON


async def _post(
    host: str, port: int, path: str, payload: bytes, headers: dict[str, str], go: asyncio.Event
) -> Answer:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n{head}\r\n"
    ).encode() + payload
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await go.wait()
        writer.write(request)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status_head, _, body = raw.partition(b"\r\n\r\n")
    lines = status_head.decode("latin1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return Answer(None, {}, None)
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return Answer(
        int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()}, parsed
    )


def concurrent_posts(
    url: str, path: str, body: dict[str, object], headers: dict[str, str], *, count: int,
    give_up_after: float,
) -> list[Answer]:  # fmt: skip
    """`count` POSTs, each on its own connection, all connected first and then sent together.

    A request with no answer within `give_up_after` seconds of the release is an Answer with
    status None (a hang guard, not a timing goal).
    """
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()

    async def run() -> list[Answer]:
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(_post(host, int(port), path, payload, headers, go))
            for _ in range(count)
        ]
        await asyncio.sleep(1.0)  # let every connection open before the release
        go.set()
        done, pending = await asyncio.wait(tasks, timeout=give_up_after)
        for task in pending:
            task.cancel()
        return [
            task.result() if task in done and not task.exception() else Answer(None, {}, None)
            for task in tasks
        ]

    return asyncio.run(run())
