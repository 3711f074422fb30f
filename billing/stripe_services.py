"""Calls the platform makes to Stripe: plans to products and prices, Checkout, the portal.

Every write carries an idempotency key, so a retry (the library's, or a person clicking
twice) cannot create a second customer or price. The database is written only after
Stripe has answered, so a Stripe error leaves nothing half-made: at most a customer that
the next attempt reuses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction

from accounts.models import User, Workspace
from billing.checkouts import checkout_record
from billing.models import Plan, Subscription
from billing.selectors import default_plan
from billing.stripe_client import (
    StripeRequestFailed,
    as_dict,
    stripe_call,
    stripe_client,
    stripe_not_found,
)
from billing.subscriptions import REPLACEABLE_STATUSES, stripe_id
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
        "create the customer",
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
            f"There is no paid plan {plan_slug!r} to subscribe to.",
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
            "This workspace already has a subscription. Change or cancel it in the billing "
            "portal (POST /api/v1/billing/portal).",
            code="already_subscribed",
        )
    customer_id = billing_customer_ensure(workspace=workspace, user=user)
    workspace_meta = {"workspace_id": str(workspace.pk)}
    session = stripe_call(
        "start the checkout",
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
    return CheckoutStart(session_id=session.id, url=session.url)


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
            "This workspace has no billing account yet: subscribe to a plan first "
            "(POST /api/v1/billing/checkout).",
            code="no_billing_account",
        )
    session = stripe_call(
        "open the billing portal",
        lambda: client.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": settings.BILLING_PORTAL_RETURN_URL},
            options={"idempotency_key": _request_key("portal", workspace, idempotency_key)},
        ),
    )
    return session.url


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
        try:
            stripe_call(
                f"refund {subscription_id}",
                lambda: client.v1.refunds.create(
                    params={**payment, "metadata": {"subscription": subscription_id}},
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


def _lookup_key(plan: Plan) -> str:
    return f"atelier-{plan.slug}-{plan.price_cents}-{settings.BILLING_CURRENCY}-month"


def _price_matches(price: dict[str, Any], plan: Plan) -> bool:
    recurring = price.get("recurring") or {}
    return (
        price.get("active", True)
        and price.get("unit_amount") == plan.price_cents
        and price.get("currency") == settings.BILLING_CURRENCY
        and recurring.get("interval") == "month"
    )


def _product_ensure(client: stripe.StripeClient, plan: Plan) -> tuple[str, str]:
    product_id = plan.stripe_product_id or f"atelier-{plan.slug}"
    try:
        product = as_dict(client.v1.products.retrieve(product_id))
    except stripe.StripeError as error:
        if not stripe_not_found(error):
            raise
        created = client.v1.products.create(
            params={"id": product_id, "name": plan.name, "metadata": {"plan": plan.slug}},
            options={"idempotency_key": f"atelier-product-{product_id}"},
        )
        return created.id, "created"
    if product.get("name") != plan.name or not product.get("active", True):
        client.v1.products.update(
            product_id,
            params={"name": plan.name, "active": True},
            options={"idempotency_key": f"atelier-product-{product_id}-{plan.name}"},
        )
        return product_id, "updated"
    return product_id, "unchanged"


def _price_ensure(client: stripe.StripeClient, plan: Plan, product_id: str) -> tuple[str, str]:
    if plan.stripe_price_id:
        try:
            current = as_dict(client.v1.prices.retrieve(plan.stripe_price_id))
        except stripe.StripeError as error:
            if not stripe_not_found(error):
                raise
        else:
            if _price_matches(current, plan) and current.get("product") == product_id:
                return plan.stripe_price_id, "unchanged"
    lookup_key = _lookup_key(plan)
    found = client.v1.prices.list(params={"lookup_keys": [lookup_key], "active": True})
    for price in found.data:
        if _price_matches(as_dict(price), plan):
            return price.id, "found"
    # Prices are immutable: a new amount is a new price. Subscribers on the old price keep
    # their plan through its product.
    created = client.v1.prices.create(
        params={
            "product": product_id,
            "unit_amount": plan.price_cents,
            "currency": settings.BILLING_CURRENCY,
            "recurring": {"interval": "month"},
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
            "metadata": {"plan": plan.slug},
        },
        options={"idempotency_key": f"atelier-price-{lookup_key}"},
    )
    return created.id, "created"


def stripe_plans_sync() -> list[str]:
    """Create or update a Stripe product and monthly price for each paid plan and store
    their ids. Idempotent: a second run changes nothing. Returns one line per plan."""
    client = stripe_client()
    report = []
    for plan in Plan.objects.filter(is_default=False, price_cents__gt=0):
        product_id, product_action = stripe_call(
            f"sync the product of {plan.slug}", lambda plan=plan: _product_ensure(client, plan)
        )
        price_id, price_action = stripe_call(
            f"sync the price of {plan.slug}",
            lambda plan=plan, product_id=product_id: _price_ensure(client, plan, product_id),
        )
        Plan.objects.filter(pk=plan.pk).update(
            stripe_product_id=product_id, stripe_price_id=price_id
        )
        report.append(
            f"{plan.slug}: product {product_id} {product_action}, price {price_id} {price_action}"
        )
    return report
