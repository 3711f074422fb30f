"""One error shape for the whole API: {"error": {"code", "message", "type", "param"}}.

It is the shape OpenAI's API uses, so clients written for that API understand ours.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class ApiError(exceptions.APIException):
    """An error with a stable machine-readable code, raised by services and views."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int = 400,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}


def error_body(
    *, code: str, message: str, status_code: int, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    error_type = _TYPE_BY_STATUS.get(
        status_code, "api_error" if status_code >= 500 else "invalid_request_error"
    )
    return {
        "error": {"code": code, "message": message, "type": error_type, "param": param, **extra}
    }


def _flatten_validation(detail: Any, prefix: str = "") -> list[tuple[str | None, str]]:
    """Turn DRF's nested validation detail into (field, message) pairs."""
    if isinstance(detail, dict):
        pairs: list[tuple[str | None, str]] = []
        for field, value in detail.items():
            name = field if field != "non_field_errors" else ""
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            pairs.extend(_flatten_validation(value, path))
        return pairs
    if isinstance(detail, list):
        pairs = []
        for item in detail:
            pairs.extend(_flatten_validation(item, prefix))
        return pairs
    return [(prefix or None, str(detail))]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        body = error_body(
            code=exc.error_code,
            message=str(exc.detail),
            status_code=exc.status_code,
            param=exc.param,
            **exc.extra,
        )
        return Response(body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, Ratelimited):
        body = error_body(
            code="rate_limited",
            message="Too many requests. Slow down and try again shortly.",
            status_code=429,
        )
        return Response(body, status=429, headers={"Retry-After": "60"})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        pairs = _flatten_validation(exc.detail)
        param = pairs[0][0] if pairs else None
        message = "; ".join(f"{field}: {msg}" if field else msg for field, msg in pairs)
        body = error_body(code="invalid_request", message=message, status_code=400, param=param)
        return Response(body, status=400)
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        code = {"parse_error": "invalid_json"}.get(code, code)
        body = error_body(code=code, message=str(exc.detail), status_code=exc.status_code)
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled API error", exc_info=exc)
    body = error_body(
        code="server_error", message="Something went wrong on our side.", status_code=500
    )
    return Response(body, status=500)


def json_404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body(code="not_found", message="No such resource.", status_code=404), status=404
    )


def json_500(request: Any) -> JsonResponse:
    return JsonResponse(
        error_body(
            code="server_error", message="Something went wrong on our side.", status_code=500
        ),
        status=500,
    )
