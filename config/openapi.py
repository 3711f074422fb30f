"""The OpenAPI description of the API (drf-spectacular), served at /api/schema/.

Every operation lists its error responses in the one error shape: AtelierAutoSchema adds
those that follow from the endpoint itself (authentication, a body, an id in the path), and
the bodies and extra refusals of the native API are described below, in one place, so that
the views stay thin. config/urls.py imports this module before the schema is built.

A DRF view that is not described here (nor with @extend_schema beside it) makes
`manage.py check` warn (drf_spectacular.W002), and the deploy check test fails on it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from accounts import api as accounts_api
from billing import api as billing_api
from billing import subscription_api
from generation import api as generation_api


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


def error(description: str) -> OpenApiResponse:
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
                    error(ERRORS[code]), str(code), direction=direction
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


def _described(view: type, **methods: Any) -> None:
    extend_schema_view(**methods)(view)


class MeOutput(serializers.Serializer):
    class WorkspaceRef(serializers.Serializer):
        id = serializers.UUIDField()
        name = serializers.CharField()

    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    workspace = WorkspaceRef()
    workspaces = WorkspaceRef(many=True)


class ApiKeyList(serializers.Serializer):
    data = accounts_api.ApiKeyOutput(many=True)


class ApiKeyCreated(accounts_api.ApiKeyOutput):
    key = serializers.CharField(help_text="The secret, shown this once.")

    class Meta(accounts_api.ApiKeyOutput.Meta):
        fields = [*accounts_api.ApiKeyOutput.Meta.fields, "key"]


class UsageOutput(serializers.Serializer):
    class PlanRef(serializers.Serializer):
        slug = serializers.CharField()
        name = serializers.CharField()

    class Window(serializers.Serializer):
        window_start = serializers.DateTimeField()
        used = serializers.IntegerField()

    plan = PlanRef()
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    reset_at = serializers.DateTimeField()
    history = Window(many=True)


class JobPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = generation_api.JobOutput(many=True)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Makes a retry safe: the same key and body return the same job, uncharged.",
)
PNG = OpenApiResponse(OpenApiTypes.BINARY, description="The PNG image.")

_described(
    accounts_api.SignupApi,
    post=extend_schema(
        summary="Sign up: account, personal workspace and a first API key, which works once "
        "the address is verified by the mailed link",
        request=accounts_api.SignupInput,
        responses={201: accounts_api.SignupOutput, 429: error(ERRORS[429])},
        auth=[],
    ),
)
_described(
    accounts_api.LoginApi,
    post=extend_schema(
        summary="Start a browser session",
        request=accounts_api.CredentialsInput,
        responses={
            200: MeOutput,
            401: error("Wrong email or password."),
            403: error("The address is not verified yet (`email_unverified`): a link is mailed."),
            429: error(ERRORS[429]),
        },
        auth=[],
    ),
)
_described(
    accounts_api.LogoutApi,
    post=extend_schema(summary="End the session", request=None, responses={204: None}),
)
_described(
    accounts_api.MeApi,
    get=extend_schema(summary="You and your workspaces", responses={200: MeOutput}),
)
_described(
    accounts_api.ApiKeyListCreateApi,
    get=extend_schema(summary="The workspace's API keys", responses={200: ApiKeyList}),
    post=extend_schema(
        summary="Create an API key (its secret is shown once); needs a session, not a key",
        request=accounts_api.ApiKeyInput,
        responses={201: ApiKeyCreated},
    ),
)
_described(
    accounts_api.ApiKeyRevokeApi,
    delete=extend_schema(
        summary="Revoke an API key: owners and admins any, members their own; needs a session",
        responses={204: None},
    ),
)
_described(
    billing_api.UsageApi,
    get=extend_schema(summary="Plan, quota and usage history", responses={200: UsageOutput}),
)
_described(
    generation_api.GenerationListCreateApi,
    get=extend_schema(
        summary="The workspace's jobs, newest first",
        operation_id="generations_list",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next`/`previous`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, at most 100."),
        ],
        responses={200: JobPage, 404: error("Invalid cursor.")},
    ),
    post=extend_schema(
        summary="Ask for images: the job is queued",
        request=generation_api.GenerationInput,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            202: generation_api.JobOutput,
            200: OpenApiResponse(generation_api.JobOutput, description="An idempotent replay."),
            **{code: error(ERRORS[code]) for code in SUBMIT_ERRORS},
        },
    ),
)
_described(
    generation_api.EditCreateApi,
    post=extend_schema(
        summary="Edit a photo: the job is queued",
        request={"multipart/form-data": generation_api.EditInput},
        parameters=[IDEMPOTENCY_KEY],
        responses={
            202: generation_api.JobOutput,
            200: OpenApiResponse(generation_api.JobOutput, description="An idempotent replay."),
            **{code: error(ERRORS[code]) for code in SUBMIT_ERRORS},
        },
    ),
)
_described(
    generation_api.GenerationDetailApi,
    get=extend_schema(
        summary="One job", operation_id="generations_get", responses={200: generation_api.JobOutput}
    ),
)
_described(
    generation_api.GenerationCancelApi,
    post=extend_schema(
        summary="Cancel a queued job; its images are given back",
        request=None,
        responses={
            200: generation_api.JobOutput,
            409: error("The job already started or finished."),
        },
    ),
)
_described(
    generation_api.ImageContentApi,
    get=extend_schema(summary="An image's PNG", responses={(200, "image/png"): PNG}),
)


class BillingPlan(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    price_cents = serializers.IntegerField()
    daily_images = serializers.IntegerField()


class BillingPlanOffer(BillingPlan):
    available = serializers.BooleanField()


class BillingSubscription(serializers.Serializer):
    status = serializers.CharField()
    plan = BillingPlan(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    pending_plan = BillingPlan(allow_null=True)
    pending_plan_at = serializers.DateTimeField(allow_null=True)
    grace_period_ends_at = serializers.DateTimeField(allow_null=True)


class BillingOutput(serializers.Serializer):
    billing_enabled = serializers.BooleanField()
    message = serializers.CharField(allow_null=True)
    plan = BillingPlan(allow_null=True)
    subscription = BillingSubscription(allow_null=True)
    activating = serializers.BooleanField()
    plans = BillingPlanOffer(many=True)


class RedirectOutput(serializers.Serializer):
    id = serializers.CharField(required=False)
    url = serializers.URLField(help_text="Send the browser here.")


STRIPE_ERRORS = {
    403: error("Only the workspace's owner manages billing (`owner_required`)."),
    409: error("Already subscribed, or no billing account yet."),
    501: error("Billing is not set up on this server (`billing_not_configured`)."),
    502: error("Stripe did not answer as expected (`stripe_error`)."),
}

_described(
    subscription_api.BillingApi,
    get=extend_schema(summary="Plan, subscription and the plans on offer", responses=BillingOutput),
)
_described(
    subscription_api.CheckoutApi,
    post=extend_schema(
        summary="Start a Stripe Checkout for a plan",
        request=subscription_api.CheckoutInput,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: RedirectOutput, **STRIPE_ERRORS},
    ),
)
_described(
    subscription_api.PortalApi,
    post=extend_schema(
        summary="Open the Stripe customer portal",
        request=None,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: RedirectOutput, **STRIPE_ERRORS},
    ),
)


class LaneStatus(serializers.Serializer):
    lane = serializers.CharField()
    queued_images = serializers.IntegerField()
    estimated_wait_seconds = serializers.IntegerField()


class StatusOutput(serializers.Serializer):
    banner = serializers.CharField(allow_null=True)
    free_tier_paused = serializers.BooleanField()
    workers = serializers.IntegerField(help_text="GPU workers alive now.")
    lanes = LaneStatus(many=True)


_described(
    generation_api.StatusApi,
    get=extend_schema(
        summary="The operators' banner and each lane's estimated wait (public)",
        responses=StatusOutput,
        auth=[],
    ),
)
