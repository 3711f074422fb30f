"""Refused requests per minute and code, for the operators' dashboard.

Admission counts each refusal in a Redis hash per minute (code -> count) that expires after
two hours: one HINCRBY per refusal, and the last hour is 60 small hashes to read, whatever
the traffic. A refusal counted while Redis is away is lost, never the request's answer.
"""

from __future__ import annotations

import logging
import time

import redis

from generation.queue import redis_client

logger = logging.getLogger(__name__)

_KEY = "atelier:refusals:{minute}"
_TTL = 2 * 3600


def _minute(at: float) -> int:
    return int(at // 60)


def refusal_record(code: str, *, at: float | None = None) -> None:
    """Count one refused request with the domain error's `code`."""
    key = _KEY.format(minute=_minute(at if at is not None else time.time()))
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(key, code, 1)
        pipe.expire(key, _TTL)
        pipe.execute()
    except redis.RedisError:
        logger.warning("Refusal %s not counted (Redis unreachable)", code)


def refusals_by_minute(*, minutes: int = 60, now: float | None = None) -> list[dict[str, int]]:
    """Refusals by code for each of the last `minutes` minutes, oldest first (the current,
    unfinished minute last)."""
    last = _minute(now if now is not None else time.time())
    pipe = redis_client().pipeline(transaction=False)
    for minute in range(last - minutes + 1, last + 1):
        pipe.hgetall(_KEY.format(minute=minute))
    return [
        {code.decode(): int(count) for code, count in counts.items()} for counts in pipe.execute()
    ]
