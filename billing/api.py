"""Billing API: the workspace's usage and billing state, Checkout and portal for its owner,
and the Stripe webhook."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Membership
from accounts.selectors import membership_of
from billing.models import Plan
from billing.selectors import billing_overview, plan_for, quota_status, usage_history
from billing.stripe_client import billing_enabled
from billing.stripe_services import checkout_session_start, portal_session_start
from billing.stripe_webhooks import stripe_webhook_receive
from config.api_errors import domain_error_response
from config.errors import DomainError
from config.openapi import IDEMPOTENCY_KEY, error_response
from config.serializers import StrictSerializer


class IsWorkspaceOwner(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        membership = membership_of(request.user, request.workspace)
        if membership is None or membership.role != Membership.Role.OWNER:
            raise DomainError(
                _("Only the workspace's owner can manage its billing."),
                code="owner_required",
            )
        return True


class PlanRef(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class UsageWindow(serializers.Serializer):
    window_start = serializers.DateTimeField()
    used = serializers.IntegerField()


class UsageOutput(serializers.Serializer):
    plan = PlanRef()
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    reset_at = serializers.DateTimeField()
    history = UsageWindow(many=True)


class UsageApi(APIView):
    @extend_schema(summary="Plan, quota and usage history", responses={200: UsageOutput})
    def get(self, request: Request) -> Response:
        plan = plan_for(request.workspace)
        quota = quota_status(workspace=request.workspace, plan=plan)
        usage = {
            "plan": plan,
            "limit": quota.limit,
            "used": quota.used,
            "remaining": quota.remaining,
            "window_start": quota.window_start,
            "reset_at": quota.reset_at,
            "history": usage_history(workspace=request.workspace),
        }
        return Response(UsageOutput(usage).data)


class BillingPlan(PlanRef):
    price_cents = serializers.IntegerField()
    daily_images = serializers.IntegerField()


class BillingPlanOffer(BillingPlan):
    available = serializers.SerializerMethodField()

    def get_available(self, plan: Plan) -> bool:
        """Whether Checkout can sell it (the plan has a Stripe price)."""
        return bool(plan.stripe_price_id)


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


class BillingApi(APIView):
    @extend_schema(
        summary="Plan, subscription and the plans on offer", responses={200: BillingOutput}
    )
    def get(self, request: Request) -> Response:
        overview = billing_overview(request.workspace)
        enabled = billing_enabled()
        billing = {
            "billing_enabled": enabled,
            "message": None if enabled else "Billing is not set up on this server.",
            "plan": overview.plan,
            "subscription": overview.subscription,
            "activating": overview.activating,
            "plans": overview.plans,
        }
        return Response(BillingOutput(billing).data)


class CheckoutInput(StrictSerializer):
    plan = serializers.SlugField()


class RedirectOutput(serializers.Serializer):
    id = serializers.CharField(required=False)
    url = serializers.URLField(help_text="Send the browser here.")


STRIPE_ERRORS = {
    403: error_response("Only the workspace's owner manages billing (`owner_required`)."),
    409: error_response("Already subscribed, or no billing account yet."),
    501: error_response("Billing is not set up on this server (`billing_not_configured`)."),
    502: error_response("Stripe did not answer as expected (`stripe_error`)."),
}


class CheckoutApi(APIView):
    permission_classes = [*APIView.permission_classes, IsWorkspaceOwner]

    @extend_schema(
        summary="Start a Stripe Checkout for a plan",
        request=CheckoutInput,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: RedirectOutput, **STRIPE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        checkout = checkout_session_start(
            workspace=request.workspace,
            user=request.user,
            plan_slug=data.validated_data["plan"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        body = RedirectOutput({"id": checkout.session_id, "url": checkout.url}).data
        return Response(body, status=201)


class PortalApi(APIView):
    permission_classes = [*APIView.permission_classes, IsWorkspaceOwner]

    @extend_schema(
        summary="Open the Stripe customer portal",
        request=None,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: RedirectOutput, **STRIPE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        url = portal_session_start(
            workspace=request.workspace, idempotency_key=request.headers.get("Idempotency-Key")
        )
        return Response(RedirectOutput({"url": url}).data, status=201)


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(View):
    """Not a DRF view: the signature is checked on the body exactly as it arrived. An event
    that can never be processed is a 200 that says why (Stripe retries anything else)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        try:
            result = stripe_webhook_receive(
                payload=request.body, signature=request.headers.get("Stripe-Signature")
            )
        except DomainError as error:
            # A 5xx makes Stripe deliver the event again; the redelivery retries processing.
            return domain_error_response(error)
        return JsonResponse(result.body())
