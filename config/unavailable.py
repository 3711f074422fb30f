"""When Redis (the broker, the cache behind rate limits) cannot be reached, say so: a 503
with Retry-After, in the API's error shape or as a short page, under DEBUG too. Nothing was
charged: admission reads Redis (the rate limit) before it writes anything, and a ticket
that cannot be sent after the job was kept is logged and sent again by the sweeper.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from config.api_errors import UNAVAILABLE_ERRORS, domain_error_response, unavailable_error

logger = logging.getLogger(__name__)


class ServiceUnavailableMiddleware(MiddlewareMixin):
    """For views outside DRF (the pages); DRF's views go through api_exception_handler."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UNAVAILABLE_ERRORS):
            return None
        logger.error("Redis unreachable: %s", exception)
        error = unavailable_error()
        if request.path.startswith(("/api/", "/v1/")):
            return domain_error_response(error)
        response = HttpResponse(f"<h1>Briefly unavailable</h1><p>{error.message}</p>", status=503)
        response["Retry-After"] = str(error.retry_after)
        return response
