"""The OpenAPI description of the API (drf-spectacular), served at /api/schema/.

Every operation lists its error responses in the one error shape: AtelierAutoSchema adds
those that follow from the endpoint itself (authentication, a body, an id in the path), and
each view describes its own bodies and extra refusals with @extend_schema beside it, using
the error response and parameters defined here. This module imports no app.

A DRF view without @extend_schema makes `manage.py check` warn (drf_spectacular.W002), and
the deploy check test fails on it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key: `atl_…`."}


class WorkspaceSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.WorkspaceSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. quota_exceeded.")
    message = serializers.CharField(help_text="What happened and what to do, for a person.")
    type = serializers.CharField(help_text="OpenAI's error type, e.g. rate_limit_error.")
    param = serializers.CharField(allow_null=True, help_text="The offending field, if any.")


class Error(serializers.Serializer):
    """Every error of the API, native or OpenAI-compatible: OpenAI's shape."""

    error = ErrorDetail()


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(Error, description=description)


ERRORS = {
    400: "Invalid input: `param` names the field.",
    401: "Missing or wrong credentials (code `invalid_api_key` or `not_authenticated`).",
    403: "Not allowed: e.g. the workspace is suspended.",
    404: "No such object in your workspace.",
    409: "Conflict: e.g. an Idempotency-Key reused with another body.",
    415: "Unsupported Content-Type.",
    422: "The content policy refused the prompt (`policy_refused`).",
    429: "Rate limit (`rate_limit_exceeded`) or daily quota (`quota_exceeded`, with "
    "`reset_at`); `Retry-After` says when to come back.",
    503: "Overloaded (`overloaded`): `Retry-After` says when to come back.",
}
SUBMIT_ERRORS = (409, 422, 429, 503)


class AtelierAutoSchema(AutoSchema):
    """Adds the error responses that follow from the endpoint to every operation."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    error_response(ERRORS[code]), str(code), direction=direction
                )
        return responses

    def _error_codes(self) -> list[int]:
        codes = []
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes += [400, 415]
        if not public:
            codes += [401, 403]
        if "{" in self.path:
            codes.append(404)
        return codes


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Makes a retry safe: the same key and body return the same job, uncharged.",
)
PNG = OpenApiResponse(OpenApiTypes.BINARY, description="The PNG image.")
