"""One error shape for the whole API: {"error": {"code", "message", "type", "param"}}.

It is the shape OpenAI's API uses, so clients written for that API understand ours.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions
from rest_framework.response import Response

from config.errors import DomainError
from config.overload import unavailable_error
from config.request_middleware import refusal_code_set

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


# The one table from a domain error's code to its HTTP status; any other code is a 400.
# Retry-After comes from the error's `retry_after` fact, whatever its code.
STATUS_BY_CODE = {
    "invalid_credentials": 401,
    "workspace_suspended": 403,
    "teams_need_paid_plan": 403,
    "invitation_wrong_user": 403,
    "owner_required": 403,
    "admin_required": 403,
    "email_unverified": 403,
    "model_not_found": 404,
    "idempotency_key_reused": 409,
    "job_not_cancellable": 409,
    "job_not_retryable": 409,
    "delivery_pending": 409,
    "invitation_used": 409,
    "already_subscribed": 409,
    "no_billing_account": 409,
    "policy_refused": 422,
    "quota_exceeded": 429,
    "rate_limit_exceeded": 429,
    "webhook_processing_failed": 500,
    "billing_not_configured": 501,
    "stripe_error": 502,
    "overloaded": 503,
    "free_tier_paused": 503,
    "service_unavailable": 503,
}


def http_status(error: DomainError) -> int:
    return STATUS_BY_CODE.get(error.code, 400)


def http_headers(error: DomainError) -> dict[str, str]:
    retry_after = error.retry_after
    return {"Retry-After": str(max(retry_after, 1))} if retry_after is not None else {}


def _json_fact(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def domain_error_body(error: DomainError) -> dict[str, Any]:
    """The error shape, with the error's facts beside code and message."""
    facts = {name: _json_fact(value) for name, value in error.facts.items()}
    return error_body(
        code=error.code,
        message=error.message,
        status_code=http_status(error),
        param=error.param,
        **facts,
    )


def domain_error_response(error: DomainError) -> JsonResponse:
    """For views outside DRF (the Stripe webhook, middleware)."""
    return JsonResponse(
        domain_error_body(error), status=http_status(error), headers=http_headers(error)
    )


def error_body(
    *, code: str, message: str, status_code: int, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    refusal_code_set(code)  # logged once, on the request's line (config/request_middleware)
    error_type = _TYPE_BY_STATUS.get(
        status_code, "api_error" if status_code >= 500 else "invalid_request_error"
    )
    return {
        "error": {"code": code, "message": message, "type": error_type, "param": param, **extra}
    }


def flatten_validation(detail: Any, prefix: str = "") -> list[tuple[str | None, str]]:
    """Turn DRF's nested validation detail into (field, message) pairs."""
    if isinstance(detail, dict):
        pairs: list[tuple[str | None, str]] = []
        for field, value in detail.items():
            name = field if field != "non_field_errors" else ""
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            pairs.extend(flatten_validation(value, path))
        return pairs
    if isinstance(detail, list):
        pairs = []
        for item in detail:
            pairs.extend(flatten_validation(item, prefix))
        return pairs
    return [(prefix or None, str(detail))]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    headers: dict[str, str] = {}
    exc = unavailable_error(exc) or exc  # a busy database, Redis away: 503, not 500
    if isinstance(exc, DomainError):
        return Response(domain_error_body(exc), status=http_status(exc), headers=http_headers(exc))
    if isinstance(exc, Ratelimited):
        body = error_body(
            code="rate_limited",
            message=_("Too many requests. Slow down and try again shortly."),
            status_code=429,
        )
        return Response(body, status=429, headers={"Retry-After": "60"})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        pairs = flatten_validation(exc.detail)
        param = pairs[0][0] if pairs else None
        message = "; ".join(f"{field}: {msg}" if field else msg for field, msg in pairs)
        body = error_body(code="invalid_request", message=message, status_code=400, param=param)
        return Response(body, status=400)
    if isinstance(exc, exceptions.APIException):
        if auth_header := getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = auth_header
        if wait := getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(wait))
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else str(exc.default_code)
        code = {"parse_error": "invalid_json"}.get(code, code)
        body = error_body(code=code, message=str(exc.detail), status_code=exc.status_code)
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled API error", exc_info=exc)
    body = error_body(
        code="server_error", message=_("Something went wrong on our side."), status_code=500
    )
    return Response(body, status=500)


def json_404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body(code="not_found", message=_("No such resource."), status_code=404), status=404
    )


def json_500(request: Any) -> JsonResponse:
    return JsonResponse(
        error_body(
            code="server_error", message=_("Something went wrong on our side."), status_code=500
        ),
        status=500,
    )
