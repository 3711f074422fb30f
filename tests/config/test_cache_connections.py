"""Under ASGI every request has its own cache object; they must share Redis connections."""

from __future__ import annotations

import contextvars

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
