"""Django's Redis cache with one connection pool and one client per process.

Django keeps a cache object per request context, and under ASGI every request is a new
context: with redis-py's plain pool each request would open (and leak to the garbage
collector) a fresh connection to Redis. `SharedConnectionPool` hands out one shared pool per
URL and options, so requests reuse connections like the rest of the process does.

Django's client also builds a new `redis.Redis` for every cache call, and each one fills a
table of about a hundred response callbacks: a third of a millisecond of CPU here, three
times per submission (the rate limit's counter). `RedisCache` keeps one client per pool
instead; a `redis.Redis` is safe to share between threads (each command takes a connection
from the pool).

`incr` is one atomic round trip (a Lua script) where Django's client makes two (EXISTS, then
INCRBY): django-ratelimit counts every submission with it, and between Django's two calls the
key could expire and come back from INCRBY without an expiry, a counter that never resets.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


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


# INCRBY only a key that exists (false, a nil reply, otherwise).
_INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class SharedClientRedisCacheClient(RedisCacheClient):
    _clients: dict[redis.ConnectionPool, redis.Redis] = {}
    _incr_scripts: dict[redis.Redis, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients.setdefault(pool, self._client(connection_pool=pool))
        return client

    def incr(self, key: Any, delta: int) -> int:
        client = self.get_client(key, write=True)
        script = self._incr_scripts.get(client)
        if script is None:
            script = self._incr_scripts.setdefault(client, client.register_script(_INCR_EXISTING))
        value = script(keys=[key], args=[delta], client=client)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return int(value)


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
