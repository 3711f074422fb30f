"""Billing API: the workspace's usage and billing state, Checkout and portal for its owner,
and the Stripe webhook."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Membership
from accounts.selectors import membership_of
from billing.models import Plan, Subscription
from billing.selectors import billing_overview, plan_for, quota_status, usage_history
from billing.stripe_client import billing_enabled
from billing.stripe_services import checkout_session_start, portal_session_start
from billing.stripe_webhooks import stripe_webhook_receive
from config.api_errors import domain_error_response
from config.errors import DomainError
from config.serializers import StrictSerializer


class IsWorkspaceOwner(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        membership = membership_of(request.user, request.workspace)
        if membership is None or membership.role != Membership.Role.OWNER:
            raise DomainError(
                "Only the workspace's owner can manage its billing.",
                code="owner_required",
            )
        return True


def _plan(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "slug": plan.slug,
        "name": plan.name,
        "price_cents": plan.price_cents,
        "daily_images": plan.daily_images,
    }


def _subscription(subscription: Subscription | None) -> dict[str, Any] | None:
    if subscription is None:
        return None
    return {
        "status": subscription.status,
        "plan": _plan(subscription.plan),
        "current_period_end": subscription.current_period_end,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "pending_plan": _plan(subscription.pending_plan),
        "pending_plan_at": subscription.pending_plan_at,
        "grace_period_ends_at": subscription.grace_period_ends_at,
    }


class UsageApi(APIView):
    def get(self, request: Request) -> Response:
        plan = plan_for(request.workspace)
        quota = quota_status(workspace=request.workspace, plan=plan)
        history = usage_history(workspace=request.workspace)
        return Response(
            {
                "plan": {"slug": plan.slug, "name": plan.name},
                "limit": quota.limit,
                "used": quota.used,
                "remaining": quota.remaining,
                "window_start": quota.window_start,
                "reset_at": quota.reset_at,
                "history": [
                    {"window_start": counter.window_start, "used": counter.used}
                    for counter in history
                ],
            }
        )


class BillingApi(APIView):
    def get(self, request: Request) -> Response:
        overview = billing_overview(request.workspace)
        enabled = billing_enabled()
        return Response(
            {
                "billing_enabled": enabled,
                "message": None if enabled else "Billing is not set up on this server.",
                "plan": _plan(overview.plan),
                "subscription": _subscription(overview.subscription),
                "activating": overview.activating,
                "plans": [
                    {**_plan(plan), "available": bool(plan.stripe_price_id)}
                    for plan in overview.plans
                ],
            }
        )


class CheckoutInput(StrictSerializer):
    plan = serializers.SlugField()


class CheckoutApi(APIView):
    permission_classes = [*APIView.permission_classes, IsWorkspaceOwner]

    def post(self, request: Request) -> Response:
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        checkout = checkout_session_start(
            workspace=request.workspace,
            user=request.user,
            plan_slug=data.validated_data["plan"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        return Response({"id": checkout.session_id, "url": checkout.url}, status=201)


class PortalApi(APIView):
    permission_classes = [*APIView.permission_classes, IsWorkspaceOwner]

    def post(self, request: Request) -> Response:
        url = portal_session_start(
            workspace=request.workspace, idempotency_key=request.headers.get("Idempotency-Key")
        )
        return Response({"url": url}, status=201)


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
