"""The plan timeline of a subscription row and its audit log: which plan applies now and at
each scheduled change, and the `PlanChange` rows that record what a new state changed."""

from __future__ import annotations

from datetime import datetime

from billing.models import Plan, PlanChange, StripeEvent, Subscription

# The plan timeline of a subscription row: (from when, plan) now and at each scheduled change.
Schedule = list[tuple[datetime, Plan]]


def plan_schedule(subscription: Subscription | None, now: datetime, fallback: Plan) -> Schedule:
    if subscription is None:
        return [(now, fallback)]
    points = [now]
    for at in (subscription.pending_plan_at, subscription.grace_period_ends_at):
        if at is not None and at > now and subscription.status in Subscription.PLAN_STATUSES:
            points.append(at)
    schedule: Schedule = []
    for at in sorted(points):
        plan = subscription.plan_at(at) or fallback
        if not schedule or schedule[-1][1] != plan:
            schedule.append((at, plan))
    return schedule


def _now_cause(*, before: Plan, after: Plan, old_status: str, fallback: Plan) -> str:
    if after == fallback:
        return PlanChange.Cause.CANCELED
    if old_status in Subscription.PAYMENT_FAILING_STATUSES and before == fallback:
        return PlanChange.Cause.PAYMENT_RECOVERED
    if before == fallback:
        return PlanChange.Cause.SUBSCRIBED
    if after.price_cents >= before.price_cents:
        return PlanChange.Cause.UPGRADED
    return PlanChange.Cause.DOWNGRADED


def plan_changes_log(
    *,
    subscription: Subscription,
    before: Schedule,
    after: Schedule,
    old_status: str,
    now: datetime,
    fallback: Plan,
    event: StripeEvent | None,
) -> list[PlanChange]:
    """Record what the new state changes: the plan now, and changes scheduled or cancelled."""
    detail = f"Stripe subscription {subscription.stripe_subscription_id}: {subscription.status}"
    changes: list[PlanChange] = []

    def log(from_plan: Plan, to_plan: Plan, at: datetime, cause: str, text: str) -> None:
        changes.append(
            PlanChange(
                workspace=subscription.workspace, from_plan=from_plan, to_plan=to_plan,
                effective_at=at, cause=cause, detail=text[:300], stripe_event=event,
            )
        )  # fmt: skip

    if before[0][1] != after[0][1]:
        cause = _now_cause(
            before=before[0][1], after=after[0][1], old_status=old_status, fallback=fallback
        )
        log(before[0][1], after[0][1], now, cause, detail)
    old_points = {(at, plan.pk) for at, plan in before[1:]}
    new_points = {(at, plan.pk) for at, plan in after[1:]}
    for index, (at, plan) in enumerate(after[1:], start=1):
        if (at, plan.pk) not in old_points:
            grace = at == subscription.grace_period_ends_at
            cause = (
                PlanChange.Cause.PAYMENT_FAILED if grace else PlanChange.Cause.DOWNGRADE_SCHEDULED
            )
            log(
                after[index - 1][1],
                plan,
                at,
                cause,
                f"{detail}; takes effect at {at:%Y-%m-%d %H:%M} UTC",
            )
    for at, plan in before[1:]:
        if (at, plan.pk) not in new_points:
            kept = subscription.plan_at(at) or fallback
            recovered = subscription.status not in Subscription.PAYMENT_FAILING_STATUSES
            cause = (
                PlanChange.Cause.PAYMENT_RECOVERED
                if plan == fallback and recovered
                else PlanChange.Cause.SCHEDULE_CANCELLED
            )
            log(
                kept,
                kept,
                now,
                cause,
                f"{detail}; the change to {plan} at {at:%Y-%m-%d %H:%M} UTC is cancelled",
            )
    return PlanChange.objects.bulk_create(changes)
