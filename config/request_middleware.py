"""One middleware per request: its id, its metrics and its one log line.

- X-Request-ID: an incoming one is kept (config.logs.request_id_from), else one is made;
  it is on every log line of the request and always returned (OpenAI's SDK reports it).
- Metrics: requests by route pattern (bounded: never the path itself), method and status,
  and the time taken (config/metrics.py). O(1), no query.
- The log: one INFO line per request with its status, time and, for a refusal, its error
  code (set by the API's error handler through `refusal_code_set`). Django's own WARNING
  per 4xx is dropped (config.logs.RefusalsAreNotErrors), so a refusal is logged once.

Sync and async capable, so that the waiting OpenAI-compatible views stay on the event loop.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from config.logs import request_id_from, request_id_var
from config.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("atelier.request")

_refusal_code: contextvars.ContextVar[str] = contextvars.ContextVar("refusal_code", default="")

# Probes and scrapes come every second or so: counted, but not logged line by line.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def refusal_code_set(code: str) -> None:
    """The error code of the answer being made (logged on the request's line)."""
    _refusal_code.set(code)


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        tokens = self._begin(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._end(request, response, started, tokens)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        tokens = self._begin(request)
        started = time.perf_counter()
        response = await self.get_response(request)
        self._end(request, response, started, tokens)
        return response

    def _begin(self, request: HttpRequest) -> tuple[Any, Any]:
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request.META["HTTP_X_REQUEST_ID"] = request_id
        return request_id_var.set(request_id), _refusal_code.set("")

    def _end(
        self,
        request: HttpRequest,
        response: HttpResponse,
        started: float,
        tokens: tuple[Any, Any],
    ) -> None:
        elapsed = time.perf_counter() - started
        request_id = request.META["HTTP_X_REQUEST_ID"]
        response.headers["X-Request-ID"] = request_id
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        status = response.status_code
        HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        HTTP_LATENCY.labels(route, request.method).observe(elapsed)
        if request.path not in QUIET_PATHS and logger.isEnabledFor(logging.INFO):
            code = _refusal_code.get()
            extra: dict[str, Any] = {
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            }
            if code:
                extra["code"] = code
            logger.info("%s %s %d%s", request.method, request.path, status,
                        f" {code}" if code else "", extra=extra)  # fmt: skip
        request_id_var.reset(tokens[0])
        _refusal_code.reset(tokens[1])
