from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.models import (
    AllowanceCounter,
    CheckoutSession,
    OperatorSwitches,
    Plan,
    PlanChange,
    QuotaCounter,
    QuotaLedgerEntry,
    QuotaOverride,
    StripeEvent,
    Subscription,
)
from billing.stripe_webhooks import stripe_event_replay
from config.admin import ReadOnlyAdmin
from operations.services import (
    operator_plan_save,
    operator_quota_override_delete,
    operator_quota_override_save,
    operator_switches_save,
)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name", "slug", "is_default", "daily_images", "images_per_request", "max_width",
        "max_steps", "requests_per_minute", "lane", "max_jobs_in_flight", "price_cents",
    ]  # fmt: skip

    def save_model(self, request: HttpRequest, obj: Plan, form: object, change: bool) -> None:
        operator_plan_save(actor=request.user, plan=obj)  # audited, old and new values

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # subscriptions and ledger entries refer to plans


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(admin.ModelAdmin):
    list_display = ["workspace", "daily_images", "until", "reason", "created_by", "created_at"]
    search_fields = ["workspace__name"]
    autocomplete_fields = ["workspace"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(
        self, request: HttpRequest, obj: QuotaOverride, form: object, change: bool
    ) -> None:
        operator_quota_override_save(actor=request.user, override=obj)

    def delete_model(self, request: HttpRequest, obj: QuotaOverride) -> None:
        operator_quota_override_delete(actor=request.user, override=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[QuotaOverride]) -> None:
        for override in queryset:
            operator_quota_override_delete(actor=request.user, override=override)


@admin.register(QuotaCounter)
class QuotaCounterAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "window_start", "used"]
    search_fields = ["workspace__name"]
    date_hierarchy = "window_start"


@admin.register(AllowanceCounter)
class AllowanceCounterAdmin(ReadOnlyAdmin):
    """A person's free images per window, across every free workspace they own."""

    list_display = ["person", "window_start", "used"]
    search_fields = ["person__email"]
    date_hierarchy = "window_start"


@admin.register(QuotaLedgerEntry)
class QuotaLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "person", "job", "kind", "images", "window_start"]
    list_filter = ["kind"]
    search_fields = ["workspace__name", "job__id"]


class PlanChangeInline(admin.TabularInline):
    model = PlanChange
    fk_name = "workspace"
    fields = ["created_at", "from_plan", "to_plan", "effective_at", "cause", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Read-only: Stripe is the truth (change a subscription in Stripe; give a workspace
    more images with a quota override)."""

    list_display = [
        "workspace", "plan", "status", "pending_plan", "pending_plan_at", "cancel_at_period_end",
        "grace_period_ends_at", "current_period_end", "updated_at",
    ]  # fmt: skip
    list_filter = ["plan", "status", "cancel_at_period_end"]
    search_fields = ["workspace__name", "stripe_customer_id", "stripe_subscription_id"]


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "plan", "status", "stripe_session_id", "closed_at"]
    list_filter = ["status", "plan"]
    search_fields = ["workspace__name", "stripe_session_id", "stripe_subscription_id"]
    date_hierarchy = "created_at"


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "from_plan", "to_plan", "effective_at", "cause"]
    list_filter = ["cause", "to_plan"]
    search_fields = ["workspace__name", "detail", "stripe_event__event_id"]
    date_hierarchy = "created_at"


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at", "type", "event_id", "status", "attempts", "workspace", "outcome",
    ]  # fmt: skip
    list_filter = ["status", "type"]
    search_fields = ["event_id", "workspace__name", "error"]
    date_hierarchy = "received_at"
    actions = ["replay"]

    @admin.action(
        description=gettext_lazy("Replay the selected events (reads Stripe's current state)")
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        results = [stripe_event_replay(event=event) for event in queryset.order_by("received_at")]
        failed = [event.event_id for event in results if event.status == event.Status.FAILED]
        if failed:
            self.message_user(
                request,
                _("Failed again: %(events)s. See each event's error.")
                % {"events": ", ".join(failed)},
                messages.ERROR,
            )  # fmt: skip
        else:
            self.message_user(
                request,
                _("Replayed %(count)d event(s).") % {"count": len(results)},
                messages.SUCCESS,
            )


@admin.register(OperatorSwitches)
class OperatorSwitchesAdmin(admin.ModelAdmin):
    """The overload switches: saved through the service, in effect within seconds."""

    list_display = ["__str__", "free_tier_paused", "free_daily_images", "max_queued_jobs", "banner"]
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not OperatorSwitches.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: OperatorSwitches, form: object, change: bool
    ) -> None:
        fields = {name: getattr(obj, name) for name in form.cleaned_data}  # type: ignore[attr-defined]
        operator_switches_save(actor=request.user, **fields)
        obj.pk = 1
