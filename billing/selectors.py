"""Reads for plans and quotas. Each is O(1) in the workspace's history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, QuotaCounter, Subscription
from billing.switches import operator_switches
from config.sql import column_list, model_row

# Statuses in which a subscription's plan applies (past_due, unpaid: during the grace period).
PLAN_STATUSES = Subscription.PLAN_STATUSES


@dataclass(frozen=True)
class QuotaStatus:
    plan: Plan
    limit: int
    used: int
    window_start: datetime
    reset_at: datetime
    # True: the numbers are the owner's free allowance, shared by every free workspace they
    # own; False: the workspace's own counter.
    allowance: bool = False

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def default_plan() -> Plan:
    return Plan.objects.get(is_default=True)


def _plan_in_force(workspace: str) -> str:
    """The id of the plan in force at %(at)s for the workspace that `workspace` (an SQL
    expression) names: Subscription.plan_at's rule (a plan-giving status; the default plan
    once a grace period has ended; a scheduled downgrade from its date), else the default
    plan."""
    return f"""COALESCE(
        (SELECT CASE
                    WHEN sub.grace_period_ends_at IS NOT NULL
                         AND %(at)s >= sub.grace_period_ends_at THEN NULL
                    WHEN sub.pending_plan_id IS NOT NULL AND sub.pending_plan_at IS NOT NULL
                         AND %(at)s >= sub.pending_plan_at THEN sub.pending_plan_id
                    ELSE sub.plan_id
                END
         FROM billing_subscription AS sub
         WHERE sub.workspace_id = {workspace} AND sub.status = ANY(%(statuses)s)),
        (SELECT id FROM billing_plan WHERE is_default)
    )"""  # noqa: S608 (`workspace` is one of this module's constant expressions)


# The plan in force for a workspace at a moment, as one row. One statement with no ORM
# compilation: every API request reads it (tests/billing/test_plan_in_force.py holds it to
# Subscription.plan_at).
PLAN_SQL = f"""
    SELECT {column_list(Plan)} FROM billing_plan WHERE id = {_plan_in_force("%(workspace)s")}
"""  # noqa: S608 (composed of constants: the model's column names)

# How long each of several workspaces' images are kept, by the same rule, in one statement:
# a settle stores a batch's images, whose jobs fair turns take from as many workspaces.
RETENTION_SQL = f"""
    SELECT workspace.id, plan.retention_days
    FROM unnest(%(workspaces)s::uuid[]) AS workspace (id)
    JOIN billing_plan AS plan ON plan.id = {_plan_in_force("workspace.id")}
"""  # noqa: S608 (composed of constants)


def plan_for(workspace: Workspace, at: datetime | None = None) -> Plan:
    """The plan in force now: read per request, so an upgrade applies at once, and a
    scheduled downgrade or the end of a grace period applies exactly on time."""
    params = {
        "at": at or timezone.now(),
        "workspace": workspace.pk,
        "statuses": list(PLAN_STATUSES),
    }
    plan = model_row(Plan, PLAN_SQL, params)
    if plan is not None:
        return plan
    raise Plan.DoesNotExist("No default plan: run the migrations, which create one.")


def retention_days_for(workspace_ids: Iterable[Any], at: datetime | None = None) -> dict[Any, int]:
    """Each workspace's image retention in days, from the plan in force (plan_for's rule)."""
    params: dict[str, Any] = {
        "at": at or timezone.now(),
        "workspaces": list(workspace_ids),
        "statuses": list(PLAN_STATUSES),
    }
    with connection.cursor() as cursor:
        cursor.execute(RETENTION_SQL, params)
        return dict(cursor.fetchall())


# The override in force at a moment: the newest one not yet expired.
OVERRIDE_SQL = """
    SELECT daily_images FROM billing_quotaoverride
    WHERE workspace_id = %(workspace)s AND (until IS NULL OR until > %(at)s)
    ORDER BY created_at DESC LIMIT 1
"""

# The limit in force and whose counter it applies to, as one row (limit_images, person_id).
# On the free plan (%(allowance)s) with no override in force, the workspace draws on its
# owner's free allowance: person_id is its first owner (accounts_membership's workspace_id
# index finds the rows; a free workspace has its owner and, at most, the members of a team
# whose plan lapsed). Otherwise, or with no owner left, person_id is NULL and the workspace
# counts on its own counter. An override is one workspace's own limit, so it takes the
# workspace out of the shared allowance.
LIMIT_SQL = f"""
    SELECT COALESCE(override.daily_images, %(plan_limit)s) AS limit_images,
           CASE WHEN %(allowance)s AND override.daily_images IS NULL THEN (
               SELECT user_id FROM accounts_membership
               WHERE workspace_id = %(workspace)s AND role = 'owner'
               ORDER BY created_at, id LIMIT 1
           ) END AS person_id
    FROM (SELECT) AS one LEFT JOIN ({OVERRIDE_SQL}) AS override ON true
"""  # noqa: S608 (composed of constants)

# A window's usage and the limit in force, in one round trip.
_QUOTA_SQL = f"""
    WITH quota AS MATERIALIZED ({LIMIT_SQL})
    SELECT CASE WHEN quota.person_id IS NULL
                THEN (SELECT used FROM billing_quotacounter
                      WHERE workspace_id = %(workspace)s AND window_start = %(window)s)
                ELSE (SELECT used FROM billing_allowancecounter
                      WHERE person_id = quota.person_id AND window_start = %(window)s)
           END,
           quota.limit_images,
           quota.person_id IS NOT NULL
    FROM quota
"""  # noqa: S608 (composed of constants)


def plan_limit(plan: Plan) -> int:
    """The plan's images per window, before any per-workspace override."""
    if plan.is_default:
        # Operators can lower the free quota for a day of overload.
        temporary = operator_switches().free_daily_images
        if temporary is not None:
            return min(plan.daily_images, temporary)
    return plan.daily_images


def plan_shares_allowance(plan: Plan) -> bool:
    """Whether a workspace on `plan` draws on its owner's free allowance (shared by every
    free workspace they own) rather than on a counter of its own: the free plan's do."""
    return plan.is_default


def quota_params(*, workspace_id: Any, plan: Plan, at: datetime) -> dict[str, Any]:
    """The parameters of LIMIT_SQL for a workspace on `plan` at `at`."""
    return {
        "workspace": workspace_id,
        "at": at,
        "plan_limit": plan_limit(plan),
        "allowance": plan_shares_allowance(plan),
    }


def quota_status(*, workspace: Workspace, plan: Plan | None = None) -> QuotaStatus:
    """What limits the workspace's next request: on the free plan its owner's allowance
    across their free workspaces, otherwise its own counter; one round trip."""
    plan = plan or plan_for(workspace)
    now = timezone.now()
    window_start = plan.window_start(now)
    with connection.cursor() as cursor:
        cursor.execute(
            _QUOTA_SQL,
            {**quota_params(workspace_id=workspace.pk, plan=plan, at=now), "window": window_start},
        )
        used, limit, allowance = cursor.fetchone()
    return QuotaStatus(
        plan=plan,
        limit=limit,
        used=used or 0,
        window_start=window_start,
        reset_at=window_start + plan.window,
        allowance=allowance,
    )


def usage_history(*, workspace: Workspace, days: int = 30) -> list[QuotaCounter]:
    """The images this workspace used per window (on the free plan: its share of its owner's
    allowance)."""
    since = timezone.now() - timedelta(days=days)
    return list(
        QuotaCounter.objects.filter(workspace=workspace, window_start__gte=since).order_by(
            "-window_start"
        )
    )


@dataclass(frozen=True)
class BillingOverview:
    plan: Plan
    subscription: Subscription | None
    activating: bool
    plans: list[Plan]


def billing_overview(workspace: Workspace) -> BillingOverview:
    """What a billing page shows: the plan in force, the subscription behind it, whether a
    Checkout is waiting for Stripe's confirmation, and the plans one can subscribe to."""
    subscription = (
        Subscription.objects.select_related("plan", "pending_plan")
        .filter(workspace=workspace)
        .first()
    )
    return BillingOverview(
        plan=plan_for(workspace),
        subscription=subscription if subscription and subscription.stripe_subscription_id else None,
        activating=bool(subscription and subscription.checkout_session_id),
        plans=list(Plan.objects.all()),
    )
