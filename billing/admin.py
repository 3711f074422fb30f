from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from billing.models import Plan, QuotaCounter, QuotaLedgerEntry, QuotaOverride, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name", "slug", "is_default", "daily_images", "images_per_request", "max_width",
        "max_steps", "requests_per_minute", "lane", "max_jobs_in_flight", "price_cents",
    ]  # fmt: skip


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["workspace", "plan", "status", "current_period_end", "updated_at"]
    list_filter = ["plan", "status"]
    search_fields = ["workspace__name", "stripe_customer_id", "stripe_subscription_id"]


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(admin.ModelAdmin):
    list_display = ["workspace", "daily_images", "until", "reason", "created_by", "created_at"]
    search_fields = ["workspace__name"]
    autocomplete_fields = ["workspace"]

    def save_model(
        self, request: HttpRequest, obj: QuotaOverride, form: object, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(QuotaCounter)
class QuotaCounterAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "window_start", "used"]
    search_fields = ["workspace__name"]
    date_hierarchy = "window_start"


@admin.register(QuotaLedgerEntry)
class QuotaLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "job", "kind", "images", "window_start"]
    list_filter = ["kind"]
    search_fields = ["workspace__name", "job__id"]
