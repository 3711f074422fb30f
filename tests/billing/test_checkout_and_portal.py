"""Checkout and the customer portal, tested at Stripe's HTTP boundary (localstripe serves
neither): the request the platform sends, and what it does with Stripe's answer."""

from __future__ import annotations

from collections.abc import Callable

from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from accounts.models import Membership
from billing.models import Plan, Subscription
from tests.billing.conftest import RecordedRequest, StripeRecorder, stripe_error
from tests.conftest import Person, make_person

Install = Callable[..., StripeRecorder]


def _stripe(request: RecordedRequest) -> tuple[int, dict]:
    if request.path == "/v1/customers":
        return 200, {"id": "cus_alice", "object": "customer"}
    if request.path == "/v1/checkout/sessions":
        return 200, {
            "id": "cs_1",
            "object": "checkout.session",
            "url": "https://checkout.test/cs_1",
        }
    if request.path == "/v1/billing_portal/sessions":
        return 200, {
            "id": "bps_1",
            "object": "billing_portal.session",
            "url": "https://portal.test/1",
        }
    return stripe_error(404, "Unrecognized request URL")


def _priced() -> None:
    Plan.objects.filter(slug="pro").update(
        stripe_price_id="price_pro", stripe_product_id="prod_pro"
    )


def test_checkout_starts_a_subscription_session_for_the_workspace(
    stripe_boundary: Install, alice: Person, settings: SettingsWrapper
) -> None:
    _priced()
    stripe = stripe_boundary(_stripe)

    response = alice.client().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == {"id": "cs_1", "url": "https://checkout.test/cs_1"}
    customer, checkout = stripe.writes()
    assert customer.path == "/v1/customers"
    assert customer.params["metadata[workspace_id]"] == str(alice.workspace.pk)
    assert customer.headers["Idempotency-Key"] == f"atelier-customer-{alice.workspace.pk}"
    assert checkout.path == "/v1/checkout/sessions"
    assert checkout.params["mode"] == "subscription"
    assert checkout.params["customer"] == "cus_alice"
    assert checkout.params["client_reference_id"] == str(alice.workspace.pk)
    assert checkout.params["line_items[0][price]"] == "price_pro"
    assert checkout.params["success_url"] == settings.BILLING_SUCCESS_URL
    assert checkout.params["subscription_data[metadata][workspace_id]"] == str(alice.workspace.pk)
    assert checkout.headers["Idempotency-Key"].startswith(f"atelier-checkout-{alice.workspace.pk}-")
    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.stripe_customer_id, row.checkout_session_id) == ("cus_alice", "cs_1")
    overview = alice.client().get("/api/v1/billing").json()
    assert (overview["activating"], overview["plan"]["slug"]) == (True, "free")


def test_a_second_checkout_reuses_the_customer_and_the_callers_idempotency_key(
    stripe_boundary: Install, alice: Person
) -> None:
    _priced()
    stripe = stripe_boundary(_stripe)
    client = alice.client()
    client.post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")

    again = client.post(
        "/api/v1/billing/checkout", {"plan": "pro"}, format="json", HTTP_IDEMPOTENCY_KEY="k-42"
    )

    assert again.status_code == 201
    assert [r.path for r in stripe.writes()] == [
        "/v1/customers", "/v1/checkout/sessions", "/v1/checkout/sessions",
    ]  # fmt: skip
    last = stripe.writes()[-1]
    assert last.params["customer"] == "cus_alice"
    assert last.headers["Idempotency-Key"] == f"atelier-checkout-{alice.workspace.pk}-k-42"


def test_a_stripe_error_is_a_clear_message_and_leaves_no_checkout_behind(
    stripe_boundary: Install, alice: Person
) -> None:
    _priced()

    def refuse_checkout(request: RecordedRequest) -> tuple[int, dict]:
        if request.path == "/v1/checkout/sessions":
            return stripe_error(400, "No such price: 'price_pro'")
        return _stripe(request)

    stripe_boundary(refuse_checkout)

    response = alice.client().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "stripe_error"
    assert error["message"].startswith("Stripe could not start the checkout: No such price")
    assert "Nothing was changed" in error["message"]
    row = Subscription.objects.get(workspace=alice.workspace)
    # The customer is kept for the next attempt; no session is pending, no plan changed.
    assert (row.stripe_customer_id, row.checkout_session_id, row.status) == (
        "cus_alice", "", "incomplete",
    )  # fmt: skip
    assert alice.client().get("/api/v1/usage").json()["plan"]["slug"] == "free"


def test_checkout_refuses_an_unknown_plan_and_an_existing_subscription(
    stripe_boundary: Install, alice: Person
) -> None:
    _priced()
    stripe = stripe_boundary(_stripe)
    unknown = alice.client().post("/api/v1/billing/checkout", {"plan": "gold"}, format="json")
    Subscription.objects.create(
        workspace=alice.workspace, plan=Plan.objects.get(slug="pro"), status="active",
        stripe_customer_id="cus_alice", stripe_subscription_id="sub_1",
    )  # fmt: skip

    existing = alice.client().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "plan_not_available")
    assert (existing.status_code, existing.json()["error"]["code"]) == (409, "already_subscribed")
    assert stripe.requests == []


def test_the_portal_opens_for_the_workspaces_customer(
    stripe_boundary: Install, alice: Person, settings: SettingsWrapper
) -> None:
    stripe = stripe_boundary(_stripe)
    before = alice.client().post("/api/v1/billing/portal")
    Subscription.objects.create(
        workspace=alice.workspace, plan=Plan.objects.get(slug="pro"), status="active",
        stripe_customer_id="cus_alice", stripe_subscription_id="sub_1",
    )  # fmt: skip

    response = alice.client().post("/api/v1/billing/portal")

    assert (before.status_code, before.json()["error"]["code"]) == (409, "no_billing_account")
    assert (response.status_code, response.json()) == (201, {"url": "https://portal.test/1"})
    [portal] = stripe.writes()
    assert portal.params == {
        "customer": "cus_alice",
        "return_url": settings.BILLING_PORTAL_RETURN_URL,
    }
    assert portal.headers["Idempotency-Key"].startswith(f"atelier-portal-{alice.workspace.pk}-")


def test_only_the_owner_manages_billing(
    stripe_boundary: Install, alice: Person, bob: Person, charlie: APIClient
) -> None:
    _priced()
    stripe = stripe_boundary(_stripe)
    dana = make_person("dana@example.com")
    Membership.objects.create(user=dana.user, workspace=alice.workspace, role="member")
    _, dana_key = api_key_create(workspace=alice.workspace, user=dana.user)
    dana_in_alice = APIClient()
    dana_in_alice.credentials(HTTP_AUTHORIZATION=f"Bearer {dana_key}")

    member = dana_in_alice.post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")
    member_portal = dana_in_alice.post("/api/v1/billing/portal")
    anonymous = charlie.post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")
    anonymous_read = charlie.get("/api/v1/billing")
    bobs_own = bob.client().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")

    assert (member.status_code, member.json()["error"]["code"]) == (403, "owner_required")
    assert member_portal.status_code == 403
    assert anonymous.status_code == 401
    assert anonymous_read.status_code == 401
    # Bob can only ever act on his own workspace: his checkout names it, never Alice's.
    assert bobs_own.status_code == 201
    [checkout] = [r for r in stripe.writes() if r.path == "/v1/checkout/sessions"]
    assert checkout.params["client_reference_id"] == str(bob.workspace.pk)
    assert not Subscription.objects.filter(workspace=alice.workspace).exists()
    assert dana_in_alice.get("/api/v1/billing").status_code == 200


def test_without_a_stripe_key_billing_says_it_is_not_set_up_and_the_rest_works(
    settings: SettingsWrapper, alice: Person
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client = alice.client()

    checkout = client.post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")
    portal = client.post("/api/v1/billing/portal")
    overview = client.get("/api/v1/billing")

    for response in (checkout, portal):
        assert response.status_code == 501
        assert response.json()["error"]["code"] == "billing_not_configured"
        assert "Billing is not set up" in response.json()["error"]["message"]
    assert overview.status_code == 200
    assert overview.json()["billing_enabled"] is False
    assert overview.json()["plan"]["slug"] == "free"
    assert client.get("/api/v1/usage").status_code == 200
    assert not Subscription.objects.exists()
