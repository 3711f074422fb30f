"""kombu's Redis transport, keeping one client per channel.

kombu builds a new `redis.Redis` for every message it publishes (and for every ack), and each
one fills a table of about a hundred response callbacks: a fifth of a millisecond of CPU per
ticket here, paid on every submission. This channel keeps its synchronous client as long as
its connection pool lives (kombu drops the pool after a connection error, and a new client
follows it). A `redis.Redis` is a thread-safe facade over the pool, so sharing it changes
nothing else. Celery uses it through `CELERY_BROKER_TRANSPORT` (config/settings.py).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client: tuple[Any, Any] | None = None  # (the pool it was made for, the client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool, cached = self.pool, self._sync_client
        if cached is None or cached[0] is not pool:
            cached = self._sync_client = (pool, super()._create_client())
        return cached[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
