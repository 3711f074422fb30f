"""A database that cannot take one more request is overload: 503 with Retry-After, never 500.

The web process borrows connections from a bounded pool (settings.DB_POOL_MAX_SIZE). When none
frees up within DB_POOL_TIMEOUT, when PostgreSQL itself refuses a new client, or when a
statement outlives DB_STATEMENT_TIMEOUT, the request is answered like any other overload:
503 `overloaded` in the API's error shape, with `Retry-After`, so that clients come back
later instead of seeing a server error.
"""

from __future__ import annotations

from typing import Any

from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from rest_framework.response import Response

from config import api_errors

DATABASE_RETRY_AFTER = 2  # seconds

# PostgreSQL's answers that mean "busy", not "broken": no room for a new client, or a
# statement cancelled by the web processes' statement_timeout (DB_STATEMENT_TIMEOUT).
_BUSY = (
    pg_errors.TooManyConnections,
    pg_errors.CannotConnectNow,
    pg_errors.InsufficientResources,
    pg_errors.QueryCanceled,
)


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


def _body() -> dict[str, Any]:
    return api_errors.error_body(
        code="overloaded",
        message="The service is busy. Please retry in a few seconds.",
        status_code=503,
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception handler: the API's own, after answering a busy database with 503."""
    if isinstance(exc, DatabaseError) and database_unavailable(exc):
        return Response(_body(), status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    return api_errors.api_exception_handler(exc, context)


class DatabaseOverloadMiddleware(MiddlewareMixin):
    """The same answer for views outside DRF (pages, the OpenAI-compatible waiting views)."""

    sync_capable = True
    async_capable = True

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not (isinstance(exception, DatabaseError) and database_unavailable(exception)):
            return None
        response = JsonResponse(_body(), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
