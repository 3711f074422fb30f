"""Calls the platform makes to Stripe: customers, Checkout, the portal, reading a
subscription, and undoing a second one. (Plans to products and prices: stripe_plans.py.)

Every write carries an idempotency key, so a retry (the library's, or a person clicking
twice) cannot create a second customer or price. The database is written only after
Stripe has answered, so a Stripe error leaves nothing half-made: at most a customer that
the next attempt reuses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import User, Workspace
from billing.checkouts import checkout_record
from billing.models import Plan, StripeEvent, Subscription
from billing.selectors import default_plan
from billing.stripe_client import (
    StripeRequestFailed,
    as_dict,
    stripe_call,
    stripe_client,
    stripe_not_found,
)
from billing.subscriptions import (
    REPLACEABLE_STATUSES,
    SubscriptionRefused,
    SubscriptionState,
    stripe_id,
    subscription_apply_state,
)
from config.errors import DomainError


@dataclass(frozen=True)
class CheckoutStart:
    session_id: str
    url: str


def _request_key(kind: str, workspace: Workspace, client_key: str | None) -> str:
    # The caller's Idempotency-Key makes its retries safe; without one, each request is
    # new and only the library's own network retries share the key.
    return f"atelier-{kind}-{workspace.pk}-{client_key or uuid.uuid4().hex}"[:255]


def billing_customer_ensure(*, workspace: Workspace, user: User) -> str:
    """The workspace's Stripe customer id, creating the customer the first time."""
    existing = (
        Subscription.objects.filter(workspace=workspace)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    if existing:
        return existing
    client = stripe_client()
    customer = stripe_call(
        gettext_noop("create the customer"),
        lambda: client.v1.customers.create(
            params={
                "email": user.email,
                "name": workspace.name,
                "metadata": {"workspace_id": str(workspace.pk)},
            },
            # One customer per workspace, however often this runs within Stripe's 24 h.
            options={"idempotency_key": f"atelier-customer-{workspace.pk}"},
        ),
    )
    with transaction.atomic():
        row, created = Subscription.objects.select_for_update().get_or_create(
            workspace=workspace,
            defaults={
                "plan": default_plan(),
                "status": Subscription.Status.INCOMPLETE,
                "stripe_customer_id": customer.id,
            },
        )
        if not created and not row.stripe_customer_id:
            row.stripe_customer_id = customer.id
            row.save(update_fields=["stripe_customer_id", "updated_at"])
        return row.stripe_customer_id


def checkout_session_start(
    *, workspace: Workspace, user: User, plan_slug: str, idempotency_key: str | None = None
) -> CheckoutStart:
    """Start a Stripe Checkout for `plan_slug` and return where to send the person.

    The plan changes only when Stripe's webhook confirms the subscription, and only for a
    Checkout recorded here (billing/checkouts.py says what happens when two are paid)."""
    client = stripe_client()
    plan = Plan.objects.filter(slug=plan_slug, is_default=False).first()
    if plan is None or not plan.stripe_price_id:
        raise DomainError(
            _("There is no paid plan %(plan)r to subscribe to.") % {"plan": plan_slug},
            code="plan_not_available",
            param="plan",
        )
    current = Subscription.objects.filter(workspace=workspace).first()
    if (
        current is not None
        and current.stripe_subscription_id
        and current.status not in REPLACEABLE_STATUSES
    ):
        raise DomainError(
            _(
                "This workspace already has a subscription. Change or cancel it in the billing "
                "portal (POST /api/v1/billing/portal)."
            ),
            code="already_subscribed",
        )
    customer_id = billing_customer_ensure(workspace=workspace, user=user)
    workspace_meta = {"workspace_id": str(workspace.pk)}
    session = stripe_call(
        gettext_noop("start the checkout"),
        lambda: client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer_id,
                "client_reference_id": str(workspace.pk),
                "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
                "success_url": settings.BILLING_SUCCESS_URL,
                "cancel_url": settings.BILLING_CANCEL_URL,
                "metadata": workspace_meta,
                "subscription_data": {"metadata": {**workspace_meta, "plan": plan.slug}},
            },
            options={"idempotency_key": _request_key("checkout", workspace, idempotency_key)},
        ),
    )
    checkout_record(workspace=workspace, plan=plan, session_id=session.id)
    return CheckoutStart(session_id=session.id, url=session.url or "")


def portal_session_start(*, workspace: Workspace, idempotency_key: str | None = None) -> str:
    """A customer portal URL where the owner manages payment method, plan and cancellation."""
    client = stripe_client()
    customer_id = (
        Subscription.objects.filter(workspace=workspace)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    if not customer_id:
        raise DomainError(
            _(
                "This workspace has no billing account yet: subscribe to a plan first "
                "(POST /api/v1/billing/checkout)."
            ),
            code="no_billing_account",
        )
    session = stripe_call(
        gettext_noop("open the billing portal"),
        lambda: client.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": settings.BILLING_PORTAL_RETURN_URL},
            options={"idempotency_key": _request_key("portal", workspace, idempotency_key)},
        ),
    )
    return session.url


class StripeHasNoSubscription(SubscriptionRefused):
    code = "unknown_subscription"

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"Stripe has no subscription {subscription_id}.")


def subscription_read(subscription_id: str) -> tuple[SubscriptionState, datetime]:
    """A subscription as Stripe has it now, and when it was read. Called outside any
    transaction: no lock is held across the network."""
    read_at = timezone.now()
    client = stripe_client()
    try:
        data = stripe_call(
            f"read the subscription {subscription_id}",
            lambda: client.v1.subscriptions.retrieve(subscription_id),
        )
    except StripeRequestFailed as failed:
        if stripe_not_found(failed.__cause__):
            raise StripeHasNoSubscription(subscription_id) from None
        raise
    return SubscriptionState.from_stripe(as_dict(data)), read_at


def subscription_sync(
    *, subscription_id: str, workspace: Workspace | None = None, event: StripeEvent | None = None
) -> tuple[Subscription, str]:
    """Read a subscription from Stripe now and apply it. A read that loses a race to a newer
    one is ignored."""
    state, read_at = subscription_read(subscription_id)
    return subscription_apply_state(state=state, read_at=read_at, workspace=workspace, event=event)


def _invoice_payment(client: stripe.StripeClient, invoice_id: str) -> dict[str, str]:
    """What a refund of the invoice names: its payment intent, else its charge."""
    invoice = as_dict(client.v1.invoices.retrieve(invoice_id))
    payments = [invoice]  # API versions before 2025-03-31 name the payment on the invoice
    if not (invoice.get("payment_intent") or invoice.get("charge")):
        listed = client.v1.invoice_payments.list(params={"invoice": invoice_id})
        payments = [as_dict(item).get("payment") or {} for item in listed.data]
    for payment in payments:
        for field in ("payment_intent", "charge"):
            if payment.get(field):
                return {field: stripe_id(payment[field])}
    return {}


def subscription_refund_and_cancel(*, subscription_id: str) -> str:
    """Undo a subscription a workspace must not have (a second Checkout, paid in another
    tab): refund what its latest invoice took, then cancel it at once. Safe to repeat: the
    refund carries an idempotency key, a refunded charge counts as done, and an ended
    subscription is not cancelled again. Returns what was done."""
    client = stripe_client()
    data = as_dict(
        stripe_call(
            f"read the subscription {subscription_id}",
            lambda: client.v1.subscriptions.retrieve(subscription_id),
        )
    )
    done = []
    invoice_id = stripe_id(data.get("latest_invoice"))
    payment = (
        stripe_call(
            f"find the payment of {invoice_id}", lambda: _invoice_payment(client, invoice_id)
        )
        if invoice_id
        else {}
    )
    if payment:
        refund: Any = {**payment, "metadata": {"subscription": subscription_id}}
        try:
            stripe_call(
                f"refund {subscription_id}",
                lambda: client.v1.refunds.create(
                    params=refund,
                    options={"idempotency_key": f"atelier-refund-{subscription_id}"},
                ),
            )
        except StripeRequestFailed as failed:
            cause = failed.__cause__
            if getattr(cause, "code", None) != "charge_already_refunded":
                raise
        done.append(f"refunded {next(iter(payment.values()))}")
    if data.get("status") not in Subscription.ENDED_STATUSES:
        stripe_call(
            f"cancel {subscription_id}",
            lambda: client.v1.subscriptions.cancel(
                subscription_id, options={"idempotency_key": f"atelier-cancel-{subscription_id}"}
            ),
        )
        done.append("cancelled")
    return f"{subscription_id}: " + (", ".join(done) or "already ended, nothing to refund")
