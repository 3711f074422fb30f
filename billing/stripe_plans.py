"""The paid plans as Stripe products and monthly prices (`manage.py sync_stripe_plans`).

Idempotent: each product and price is found before it is made, and each write carries an
idempotency key, so a second run changes nothing.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

from billing.models import Plan
from billing.stripe_client import as_dict, stripe_call, stripe_client, stripe_not_found


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
