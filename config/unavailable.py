"""The answer config/overload.py gives a busy or absent dependency, for views outside DRF
(the pages, the OpenAI-compatible waiting views): the API's error shape under /api/ and
/v1/, a short page elsewhere; 503 with Retry-After, under DEBUG too."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _

from config.api_errors import domain_error_response
from config.overload import unavailable_error


class ServiceUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        error = unavailable_error(exception)
        if error is None:
            return None
        if request.path.startswith(("/api/", "/v1/")):
            return domain_error_response(error)
        title = _("Briefly unavailable")
        response = HttpResponse(f"<h1>{title}</h1><p>{error.message}</p>", status=503)
        response["Retry-After"] = str(error.retry_after)
        return response
