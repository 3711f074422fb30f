"""The queue's Redis client is made once per process, however many threads ask at once.

A burst's first requests arrive together on a fresh web process's threads. Had each made
its own client, the ones not kept would be collected, and redis-py closes a collected
client's pool, with the connection another thread was using: a 500 in the burst.
"""

from __future__ import annotations

import sys
import threading

import pytest

from generation import queue


def test_threads_asking_at_once_share_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "_client", None)
    # Switch threads as often as the interpreter can, so that they meet inside the check.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = 16
    start = threading.Barrier(threads)
    clients: list[object] = []
    answers: list[object] = []

    def ask() -> None:
        start.wait()
        client = queue.redis_client()
        clients.append(client)
        answers.append(client.ping())

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)

    assert len({id(client) for client in clients}) == 1
    assert answers == [True] * threads
