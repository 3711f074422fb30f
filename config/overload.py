"""What a request cannot get now because a part the platform depends on is busy or away:
answered 503 with Retry-After, never a 500.

- A busy database: no pooled connection within DB_POOL_TIMEOUT, PostgreSQL refusing a new
  client, or a statement past DB_STATEMENT_TIMEOUT. That is overload: 503 `overloaded`.
- Redis out of reach (the broker, the cache behind rate limits): 503
  `service_unavailable`. Nothing was charged: admission reads Redis (the rate limit) before
  it writes anything, and a ticket that cannot be sent after the job was kept is logged and
  sent again by the sweeper.

`unavailable_error` turns such an exception into a domain error; the API's exception handler
(config/api_errors.py) and, for views outside DRF, config/unavailable.py answer it.
"""

from __future__ import annotations

import logging

from django.db import Error as DatabaseError
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as BrokerError
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.errors import DomainError, ServiceUnavailable

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER = 2  # seconds
REDIS_RETRY_AFTER = 5

# PostgreSQL's answers that mean "busy", not "broken": no room for a new client, or a
# statement cancelled by the web processes' statement_timeout (DB_STATEMENT_TIMEOUT).
_BUSY = (
    pg_errors.TooManyConnections,
    pg_errors.CannotConnectNow,
    pg_errors.InsufficientResources,
    pg_errors.QueryCanceled,
)
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, BrokerError)


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says the database has no room for this request."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (PoolTimeout, *_BUSY)):
            return True
        # A refused connection carries no SQLSTATE, only PostgreSQL's words.
        if isinstance(exc, pg_errors.OperationalError) and "too many clients" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def unavailable_error(exc: BaseException) -> DomainError | None:
    """The 503 for an exception that says a dependency is busy or away; None otherwise."""
    if isinstance(exc, DatabaseError) and database_unavailable(exc):
        return DomainError(
            _("The service is busy. Please retry in a few seconds."),
            code="overloaded",
            retry_after=DATABASE_RETRY_AFTER,
        )
    if isinstance(exc, REDIS_ERRORS):
        logger.error("Redis unreachable: %s", exc)
        return ServiceUnavailable(
            _(
                "Atelier is briefly unable to take requests. Nothing was charged; please try "
                "again in a few seconds."
            ),
            retry_after=REDIS_RETRY_AFTER,
        )
    return None
