"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per request context, and under ASGI every request is a new
context: with redis-py's plain pool each request would open (and leak to the garbage
collector) a fresh connection to Redis. This pool class hands out one shared pool per URL
and options, so requests reuse connections like the rest of the process does.
"""

from __future__ import annotations

import threading
from typing import Any

import redis


class SharedConnectionPool(redis.ConnectionPool):
    _shared: dict[tuple[str, str], redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:
        key = (url, repr(sorted(kwargs.items())))
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = super().from_url(url, **kwargs)
            return cls._shared[key]
