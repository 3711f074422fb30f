"""Under ASGI every request has its own cache object; they must share Redis connections."""

from __future__ import annotations

import contextvars

import pytest
from django.core.cache import caches


def test_requests_in_separate_contexts_reuse_one_redis_connection() -> None:
    pools = []

    def request() -> None:
        cache = caches["default"]  # a new cache object in each context, as per ASGI request
        cache.set("atelier-test-key", 1)
        pools.append((cache, cache._cache._get_connection_pool(write=True)))

    for _ in range(20):
        contextvars.Context().run(request)  # a fresh context, as uvicorn gives each request
    assert len({id(cache) for cache, _ in pools}) == 20  # all kept alive: ids are distinct
    assert len({id(pool) for _, pool in pools}) == 1
    assert pools[0][1]._created_connections == 1


def test_requests_in_separate_contexts_share_one_redis_client() -> None:
    clients = []

    def request() -> None:
        clients.append(caches["default"]._cache.get_client(write=True))

    for _ in range(5):
        contextvars.Context().run(request)
    assert len({id(client) for client in clients}) == 1


def test_incr_counts_an_existing_key_and_refuses_a_missing_one() -> None:
    cache = caches["default"]
    cache.delete("atelier-test-counter")
    with pytest.raises(ValueError):
        cache.incr("atelier-test-counter")
    assert cache.get("atelier-test-counter") is None  # refusing created nothing
    assert cache.add("atelier-test-counter", 0, timeout=30)
    assert [cache.incr("atelier-test-counter") for _ in range(3)] == [1, 2, 3]
    assert cache.incr("atelier-test-counter", 10) == 13
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key("atelier-test-counter")) <= 30  # the expiry is kept
    cache.delete("atelier-test-counter")
