"""Billing's tables: plans, subscriptions and the Checkouts that start them, plan changes,
Stripe events, and the quota counters (a workspace's, a person's free allowance) and ledger.

Over 300 lines because Django keeps an app's models in one module; each model here is
fields, constraints and cheap properties of one row, and the logic lives in the services.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Lane(models.TextChoices):
    PRIORITY = "priority", _("Priority")
    STANDARD = "standard", _("Standard")
    FREE = "free", _("Free")


class ModerationLevel(models.TextChoices):
    """How strictly prompts and outputs are checked (generation/policy.py, generation/safety.py)."""

    STANDARD = "standard", _("Standard")
    STRICT = "strict", _("Strict")


class Plan(models.Model):
    """What a workspace may do. Edited in the admin; the free plan is the default."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(
        default=False, help_text=_("The plan of every workspace without a subscription.")
    )
    daily_images = models.PositiveIntegerField(help_text=_("Images per quota window."))
    window_hours = models.PositiveIntegerField(
        default=24, help_text=_("Length of the quota window; 24 is the calendar day in UTC.")
    )
    images_per_request = models.PositiveIntegerField(default=1)
    max_width = models.PositiveIntegerField(default=512)
    max_height = models.PositiveIntegerField(default=512)
    max_steps = models.PositiveIntegerField(default=10)
    requests_per_minute = models.PositiveIntegerField(default=5)
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.FREE)
    max_jobs_in_flight = models.PositiveIntegerField(default=1)
    max_wait_seconds = models.PositiveIntegerField(
        default=120, help_text=_("Longest acceptable queue wait before new jobs are shed.")
    )
    retention_days = models.PositiveIntegerField(default=7)
    allows_teams = models.BooleanField(default=False)
    moderation_level = models.CharField(
        max_length=16,
        choices=ModerationLevel.choices,
        default=ModerationLevel.STANDARD,
        help_text=_("How strictly prompts and generated images are checked."),
    )
    moderation_low_allowed = models.BooleanField(
        default=False,
        help_text=_(
            "A strict plan lets a request ask for the standard level (OpenAI's moderation=low)."
        ),
    )
    price_cents = models.PositiveIntegerField(default=0, help_text=_("Monthly price in cents."))
    stripe_price_id = models.CharField(
        max_length=100, blank=True, help_text=_("Set by manage.py sync_stripe_plans.")
    )
    stripe_product_id = models.CharField(
        max_length=100, blank=True, help_text=_("Set by manage.py sync_stripe_plans.")
    )
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "price_cents"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_plan"
            ),
            models.CheckConstraint(
                condition=Q(window_hours__gte=1), name="window_at_least_an_hour"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)

    def window_start(self, at: datetime) -> datetime:
        """Start of the quota window holding `at`: windows are aligned to the Unix epoch."""
        length = int(self.window.total_seconds())
        elapsed = int((at - EPOCH).total_seconds())
        return EPOCH + timedelta(seconds=elapsed - elapsed % length)


class Subscription(models.Model):
    """A workspace's Stripe customer and subscription, as last read from Stripe.

    Stripe is the truth; webhooks only tell us when to read it again. The row also holds
    what the platform decides on its side: a downgrade waiting for the end of the paid
    period, and the end of the grace period after a failed payment.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        TRIALING = "trialing", _("Trialing")
        PAST_DUE = "past_due", _("Past due")
        UNPAID = "unpaid", _("Unpaid")
        CANCELED = "canceled", _("Canceled")
        INCOMPLETE = "incomplete", _("Incomplete")
        INCOMPLETE_EXPIRED = "incomplete_expired", _("Incomplete, expired")
        PAUSED = "paused", _("Paused")

    # Statuses in which the subscription's plan applies (the payment ones only until the
    # grace period ends), and those a Stripe subscription never leaves.
    PLAN_STATUSES = (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE, Status.UNPAID)
    PAYMENT_FAILING_STATUSES = (Status.PAST_DUE, Status.UNPAID)
    ENDED_STATUSES = (Status.CANCELED, Status.INCOMPLETE_EXPIRED)

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="subscription"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    pending_plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text=_("A downgrade that takes effect at pending_plan_at (the paid period's end)."),
    )  # fmt: skip
    pending_plan_at = models.DateTimeField(null=True, blank=True)
    grace_period_ends_at = models.DateTimeField(
        null=True, blank=True, help_text=_("After a failed payment: the plan applies until then.")
    )
    checkout_session_id = models.CharField(
        max_length=200, blank=True, help_text=_("A Checkout started and not yet completed.")
    )
    stripe_created_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When Stripe created the subscription.")
    )
    stripe_synced_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the state stored here was read from Stripe.")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~Q(stripe_customer_id=""),
                name="one_workspace_per_stripe_customer",
            )
        ]
        indexes = [models.Index(fields=["stripe_subscription_id"])]

    def __str__(self) -> str:
        return f"{self.workspace}: {self.plan} ({self.status})"

    def plan_at(self, at: datetime) -> Plan | None:
        """The plan this subscription gives at `at`; None where the default plan applies."""
        if self.status not in self.PLAN_STATUSES:
            return None
        if self.grace_period_ends_at is not None and at >= self.grace_period_ends_at:
            return None
        if self.pending_plan_id and self.pending_plan_at and at >= self.pending_plan_at:
            return self.pending_plan
        return self.plan


class CheckoutSession(models.Model):
    """A Stripe Checkout the platform started for a workspace. Only these complete into a
    subscription, and only for the workspace they were started for (see
    billing/stripe_webhooks.py for the rule when two of them are paid)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        COMPLETED = "completed", _("Completed")
        EXPIRED = "expired", _("Expired")
        REFUSED = "refused", _("Refused: a second subscription, refunded and cancelled")

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="checkout_sessions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    stripe_session_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    stripe_subscription_id = models.CharField(
        max_length=100, blank=True, help_text=_("The subscription its completion made.")
    )
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.workspace}: {self.plan} checkout {self.stripe_session_id} ({self.status})"


class PlanChange(models.Model):
    """One change of a workspace's plan, now or scheduled, and why: the billing audit log."""

    class Cause(models.TextChoices):
        SUBSCRIBED = "subscribed", _("Subscribed")
        UPGRADED = "upgraded", _("Upgraded")
        DOWNGRADED = "downgraded", _("Downgraded")
        DOWNGRADE_SCHEDULED = "downgrade_scheduled", _("Downgrade at period end")
        CANCELED = "canceled", _("Subscription ended")
        PAYMENT_FAILED = "payment_failed", _("Payment failed: drop after the grace period")
        PAYMENT_RECOVERED = "payment_recovered", _("Payment recovered")
        SCHEDULE_CANCELLED = "schedule_cancelled", _("Scheduled change cancelled")

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="plan_changes"
    )
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_at = models.DateTimeField()
    cause = models.CharField(max_length=24, choices=Cause.choices)
    detail = models.CharField(max_length=300, blank=True)
    stripe_event = models.ForeignKey(
        "billing.StripeEvent", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="plan_changes",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.workspace}: {self.from_plan} → {self.to_plan} ({self.cause})"


class StripeEvent(models.Model):
    """A webhook event, stored once by its Stripe id, and what processing it did."""

    class Status(models.TextChoices):
        STARTED = "started", _("Started")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    payload = models.JSONField()
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="stripe_events",
    )  # fmt: skip
    stripe_created_at = models.DateTimeField(help_text=_("When Stripe created the event."))
    received_at = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"


class QuotaOverride(models.Model):
    """An operator's change to one workspace's limit per window, until a date or for good.

    It is that workspace's own limit, counted on its own counter: on the free plan it takes
    the workspace out of its owner's shared allowance while in force."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="quota_overrides"
    )
    daily_images = models.PositiveIntegerField(
        help_text=_(
            "Images per window while in force, for this workspace alone (on the free "
            "plan, instead of its owner's allowance shared by all their free workspaces)."
        )
    )
    until = models.DateTimeField(null=True, blank=True, help_text=_("Empty: until removed."))
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.workspace}: {self.daily_images} until {self.until or 'removed'}"


class QuotaCounter(models.Model):
    """Images reserved by a workspace in one window. It limits a workspace that draws on its
    own plan (a paid plan, or an override); on the free plan it only tallies the workspace's
    share of its owner's allowance (AllowanceCounter), for the usage history."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="quota_counters"
    )
    window_start = models.DateTimeField()
    used = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "window_start"], name="one_counter_per_window"
            ),
            models.CheckConstraint(condition=Q(used__gte=0), name="counter_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.workspace} {self.window_start:%Y-%m-%d %H:%M}: {self.used}"


class AllowanceCounter(models.Model):
    """Images a person reserved in one window across the free workspaces they own: the free
    allowance belongs to a person, so opening more workspaces does not multiply it."""

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="allowance_counters",
        db_index=False,  # the unique (person, window_start) index serves lookups by person
    )
    window_start = models.DateTimeField()
    used = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person", "window_start"], name="one_allowance_counter_per_window"
            ),
            models.CheckConstraint(condition=Q(used__gte=0), name="allowance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.person} {self.window_start:%Y-%m-%d %H:%M}: {self.used}"


class QuotaLedgerEntry(models.Model):
    """Reserve on admission, then exactly one of capture (success) or release (refund)."""

    class Kind(models.TextChoices):
        RESERVE = "reserve", _("Reserve")
        CAPTURE = "capture", _("Capture")
        RELEASE = "release", _("Release")
        REFUND = "refund", _("Refund")  # an operator gives a captured job's images back

    job = models.ForeignKey("generation.Job", on_delete=models.CASCADE, related_name="ledger")
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="ledger"
    )
    # Whose free allowance the reservation drew on (empty: only the workspace's own counter),
    # so that settling it gives back to the very counters the reservation raised.
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    kind = models.CharField(max_length=10, choices=Kind.choices)
    images = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = _("quota ledger entries")
        constraints = [
            models.UniqueConstraint(fields=["job", "kind"], name="one_entry_per_job_and_kind"),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(kind__in=["capture", "release"]),
                name="one_settlement_per_job",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "window_start"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.images} for job {self.job_id}"


class OperatorSwitches(models.Model):
    """The operators' levers for a day of overload; one row, read within seconds."""

    free_tier_paused = models.BooleanField(
        default=False, help_text=_("Refuse new jobs from workspaces on the default plan.")
    )
    free_daily_images = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Temporary images per window for the default plan (e.g. 1 instead of 3)."),
    )
    max_queued_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Refuse new free and standard jobs while this many jobs are queued."),
    )
    banner = models.CharField(
        max_length=300, blank=True, help_text=_("Shown in the app and returned by the API.")
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )

    class Meta:
        db_table = "generation_operatorswitches"  # made by generation's migrations
        verbose_name = _("operator switches")
        verbose_name_plural = _("operator switches")

    def __str__(self) -> str:
        return "Operator switches"
