"""Which Stripe Checkout may make a workspace's subscription. No Stripe calls here.

The rule, for a person with two tabs or anyone replaying someone else's Checkout:

- Every Checkout the platform starts is recorded with its workspace (`CheckoutSession`).
  Several may be open at once: each tab gets its own, and Stripe charges only the ones
  that are paid.
- A completion is applied only for a recorded session, and only if it names the workspace
  the session was started for. Any other completion (a session the platform did not
  start, a Payment Link, another workspace's reference) is refused and recorded as failed;
  nothing is applied, and nothing is cancelled, since the platform did not start it.
- A workspace has one subscription. The first paid Checkout to be applied makes it; a
  later one finds the workspace subscribed (`SecondSubscription`) and is refused: the
  webhook refunds its first payment and cancels it in Stripe at once, so the person pays
  for one subscription only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from billing.models import CheckoutSession, Plan, StripeEvent, Subscription
from billing.subscriptions import SubscriptionRefused, SubscriptionState, subscription_apply_state


class CheckoutNotOurs(SubscriptionRefused):
    code = "unknown_checkout"


def checkout_record(*, workspace: Workspace, plan: Plan, session_id: str) -> CheckoutSession:
    """Remember a Checkout that Stripe created for `workspace`, as the one now pending."""
    try:
        with transaction.atomic():
            checkout = CheckoutSession.objects.create(
                workspace=workspace, plan=plan, stripe_session_id=session_id
            )
    except IntegrityError:  # the same request again (its idempotency key): the same session
        checkout = CheckoutSession.objects.get(stripe_session_id=session_id, workspace=workspace)
    Subscription.objects.filter(workspace=workspace).update(checkout_session_id=session_id)
    return checkout


def checkout_for_completion(*, session_id: str, reference: str) -> CheckoutSession:
    """The recorded Checkout a completion is about, if it names the workspace it was started
    for; raises CheckoutNotOurs otherwise."""
    checkout = (
        CheckoutSession.objects.select_related("workspace")
        .filter(stripe_session_id=session_id)
        .first()
    )
    if checkout is None:
        raise CheckoutNotOurs(
            f"Checkout {session_id or '?'} was not started by this platform; nothing was applied."
        )
    try:
        same_workspace = uuid.UUID(reference) == checkout.workspace_id
    except ValueError:
        same_workspace = False
    if not same_workspace:
        raise CheckoutNotOurs(
            f"Checkout {session_id} names workspace {reference or '?'}, not the one it was "
            "started for; nothing was applied."
        )
    return checkout


@transaction.atomic
def checkout_complete(
    *,
    checkout: CheckoutSession,
    state: SubscriptionState,
    read_at: datetime,
    event: StripeEvent | None = None,
) -> tuple[Subscription, str]:
    """Apply the subscription a recorded Checkout made, in one transaction with the
    customer id and the Checkout's status. Raises SecondSubscription when the workspace
    already has another live subscription (the caller refunds and cancels it)."""
    row = Subscription.objects.select_for_update().filter(workspace=checkout.workspace).first()
    if row is not None and state.customer_id and not row.stripe_customer_id:
        row.stripe_customer_id = state.customer_id
        row.save(update_fields=["stripe_customer_id", "updated_at"])
    row, outcome = subscription_apply_state(
        state=state, read_at=read_at, workspace=checkout.workspace, event=event
    )
    CheckoutSession.objects.filter(pk=checkout.pk).update(
        status=CheckoutSession.Status.COMPLETED,
        stripe_subscription_id=state.id,
        closed_at=timezone.now(),
    )
    Subscription.objects.filter(
        workspace=checkout.workspace, checkout_session_id=checkout.stripe_session_id
    ).update(checkout_session_id="")
    return row, outcome


def checkout_refuse(*, checkout: CheckoutSession, subscription_id: str) -> None:
    """Mark a Checkout whose subscription was a second one: a redelivery of its completion
    then goes straight to refunding and cancelling."""
    CheckoutSession.objects.filter(pk=checkout.pk).update(
        status=CheckoutSession.Status.REFUSED,
        stripe_subscription_id=subscription_id,
        closed_at=timezone.now(),
    )
    Subscription.objects.filter(
        workspace=checkout.workspace, checkout_session_id=checkout.stripe_session_id
    ).update(checkout_session_id="")


def checkout_expire(*, session_id: str) -> str:
    """A Checkout Stripe expired unpaid; returns what changed."""
    closed = CheckoutSession.objects.filter(
        stripe_session_id=session_id, status=CheckoutSession.Status.OPEN
    ).update(status=CheckoutSession.Status.EXPIRED, closed_at=timezone.now())
    cleared = Subscription.objects.filter(checkout_session_id=session_id).update(
        checkout_session_id=""
    )
    return f"checkout {session_id} expired" + ("" if closed or cleared else " (not pending)")
