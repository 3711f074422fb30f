"""`manage.py sync_stripe_plans` creates products and prices once; a second run changes
nothing. Prices are tested at the HTTP boundary (localstripe does not serve them)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Plan
from tests.billing.conftest import RecordedRequest, StripeRecorder, stripe_error


class FakeStripeCatalog:
    """Products and prices as Stripe keeps them, answering the requests the command sends."""

    def __init__(self) -> None:
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}

    def __call__(self, request: RecordedRequest) -> tuple[int, dict]:
        path, params = request.path, request.params
        if request.method == "GET" and path.startswith("/v1/products/"):
            product = self.products.get(path.rsplit("/", 1)[1])
            return (200, product) if product else stripe_error(404, "No such product")
        if request.method == "POST" and path == "/v1/products":
            product = {
                "id": params["id"],
                "object": "product",
                "name": params["name"],
                "active": True,
            }
            self.products[product["id"]] = product
            return 200, product
        if request.method == "GET" and path.startswith("/v1/prices/"):
            price = self.prices.get(path.rsplit("/", 1)[1])
            return (200, price) if price else stripe_error(404, "No such price")
        if request.method == "GET" and path == "/v1/prices":
            key = params["lookup_keys[0]"]
            found = [p for p in self.prices.values() if p["lookup_key"] == key]
            return 200, {"object": "list", "data": found, "has_more": False, "url": path}
        if request.method == "POST" and path == "/v1/prices":
            price = {
                "id": f"price_{len(self.prices) + 1}", "object": "price", "active": True,
                "product": params["product"], "unit_amount": int(params["unit_amount"]),
                "currency": params["currency"], "lookup_key": params["lookup_key"],
                "recurring": {"interval": params["recurring[interval]"]},
            }  # fmt: skip
            self.prices[price["id"]] = price
            return 200, price
        return stripe_error(404, "Unrecognized request URL")


def test_sync_creates_products_and_prices_once(
    stripe_boundary: Callable[..., StripeRecorder], default_plans: None
) -> None:
    catalog = FakeStripeCatalog()
    stripe = stripe_boundary(catalog)

    call_command("sync_stripe_plans", stdout=io.StringIO())
    first_writes = stripe.writes()
    call_command("sync_stripe_plans", stdout=io.StringIO())

    pro, team = Plan.objects.get(slug="pro"), Plan.objects.get(slug="team")
    assert (pro.stripe_product_id, team.stripe_product_id) == ("atelier-pro", "atelier-team")
    assert catalog.prices[pro.stripe_price_id]["unit_amount"] == 2000
    assert catalog.prices[team.stripe_price_id]["unit_amount"] == 10000
    assert [w.path for w in first_writes] == ["/v1/products", "/v1/prices"] * 2
    assert all(w.headers["Idempotency-Key"].startswith("atelier-") for w in first_writes)
    assert stripe.writes() == first_writes  # the second run wrote nothing
    assert Plan.objects.get(slug="free").stripe_price_id == ""


def test_a_new_price_amount_makes_a_new_price(
    stripe_boundary: Callable[..., StripeRecorder], default_plans: None
) -> None:
    catalog = FakeStripeCatalog()
    stripe_boundary(catalog)
    call_command("sync_stripe_plans", stdout=io.StringIO())
    old_price = Plan.objects.get(slug="pro").stripe_price_id
    Plan.objects.filter(slug="pro").update(price_cents=2500)

    call_command("sync_stripe_plans", stdout=io.StringIO())

    pro = Plan.objects.get(slug="pro")
    assert pro.stripe_price_id != old_price
    assert catalog.prices[pro.stripe_price_id]["unit_amount"] == 2500
    assert catalog.prices[pro.stripe_price_id]["product"] == "atelier-pro"


def test_sync_without_a_stripe_key_explains_itself(
    settings: SettingsWrapper, default_plans: None
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="Billing is not set up"):
        call_command("sync_stripe_plans", stdout=io.StringIO())
