"""Keep-alive connections move off a web process that holds more than its share
(config/web_balance.py), through the server as shipped: gunicorn, two uvicorn workers."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from config.web_balance import CLOSE_SPACING
from tests.e2e.web_server import web_server

pytestmark = pytest.mark.django_db(transaction=True)


def server_workers(port: int) -> list[psutil.Process]:
    master = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if f"127.0.0.1:{port}" in " ".join(p.info["cmdline"] or [])
        and p.parent() is not None
        and p.parent().pid == os.getpid()
    )
    return master.children()


def holders(workers: list[psutil.Process], clients: list[http.client.HTTPConnection]) -> Counter:
    """How many of the clients' connections each worker holds (by pid)."""
    ports = {c.sock.getsockname()[1] for c in clients if c.sock is not None}
    held: Counter[int] = Counter()
    for worker in workers:
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port in ports and conn.status == "ESTABLISHED":
                held[worker.pid] += 1
    return held


def get(client: http.client.HTTPConnection) -> str | None:
    """GET /healthz on the connection (opened again if the server closed it); the response's
    Connection header."""
    client.request("GET", "/healthz")
    response = client.getresponse()
    assert response.status == 200
    response.read()
    return response.getheader("connection")


def test_connections_all_on_one_worker_spread_to_both_and_then_stay(tmp_path: Path) -> None:
    """Which process accepts a new connection is the kernel's choice (the benchmark measures
    what it makes of them under load); here a stopped process cannot accept, so the test
    chooses: every connection opens on `busy`, and every one it closes reopens on `idle`."""
    with web_server(tmp_path / "web.log", workers=2) as url:
        port = int(url.rsplit(":", 1)[1])
        workers = server_workers(port)
        assert len(workers) == 2
        busy, idle = workers
        clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]
        with stopped(idle):
            for client in clients:
                client.connect()
            assert held_by(workers, clients, {busy.pid: 4})

        closes = 0
        for _ in range(5 * CLOSE_SPACING):
            for client in clients:
                if get(client) == "close":
                    closes += 1
                    with stopped(busy):
                        client.connect()  # as a pool does: its next connection, made now
                        assert held_by(workers, clients, {busy.pid: 4 - closes, idle.pid: closes})
        # 4:0, then 3:1, then 2:2, where it stops: two closes, each after an answer.
        assert closes == 2
        assert held_by(workers, clients, {busy.pid: 2, idle.pid: 2})


@contextlib.contextmanager
def stopped(worker: psutil.Process) -> Iterator[None]:
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(worker.pid, signal.SIGCONT)


def held_by(
    workers: list[psutil.Process], clients: list[http.client.HTTPConnection], expected: dict
) -> bool:
    """Whether the workers come to hold the clients' connections as `expected` (the accepting
    worker may take a moment to take a connection off the queue)."""
    deadline = time.monotonic() + 10
    while holders(workers, clients) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return holders(workers, clients) == expected
