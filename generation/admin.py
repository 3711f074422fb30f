from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from config.errors import DomainError
from generation.models import (
    Image,
    Job,
    PolicyRefusal,
    PolicyRule,
    PolicyRuleTranslation,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from generation.webhooks import webhook_redeliver
from operations.services import operator_job_cancel, operator_job_refund, operator_job_retry


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    readonly_fields = ["index", "file", "width", "height", "seed", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id", "workspace", "kind", "status", "lane", "num_images", "error_code", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "lane", "kind", "error_code", "created_at"]
    search_fields = ["id", "workspace__name", "prompt"]
    # Status and queue fields change only through the actions (the services), which keep the
    # fair queue's flows and place index in step with the job.
    readonly_fields = [
        "status", "lane", "dispatch_weight", "max_in_flight", "finish_tag", "queue_seq",
        "created_at", "started_at", "finished_at", "heartbeat_at", "worker",
    ]  # fmt: skip
    date_hierarchy = "created_at"
    inlines = [ImageInline]
    actions = ["cancel", "retry", "refund"]

    @admin.action(
        description=gettext_lazy("Cancel the selected jobs (their images are given back)")
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(operator_job_cancel(actor=request.user, job=job) for job in queryset)
        skipped = queryset.count() - done
        self.message_user(
            request,
            _("Cancelled %(done)d job(s) and gave their images back.") % {"done": done}
            + (
                " " + _("%(skipped)d had already finished.") % {"skipped": skipped}
                if skipped
                else ""
            ),
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.action(
        description=gettext_lazy("Retry the selected failed or cancelled jobs as new jobs")
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                retry = operator_job_retry(actor=request.user, job=job)
                self.message_user(
                    request,
                    _("Job %(job)s resubmitted as %(retry)s.") % {"job": job.pk, "retry": retry.pk},
                )
            except DomainError as error:
                self.message_user(request, f"Job {job.pk}: {error.message}", messages.ERROR)

    @admin.action(description=gettext_lazy("Refund the selected jobs' images to their quota"))
    def refund(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        images = sum(operator_job_refund(actor=request.user, job=job) for job in queryset)
        self.message_user(
            request,
            _(
                "Gave %(images)d image(s) back to the workspaces' quotas. Jobs that had already "
                "been refunded (failed, cancelled or refunded before) were left as they were."
            )
            % {"images": images},
            messages.SUCCESS if images else messages.WARNING,
        )


class PolicyRuleTranslationInline(admin.StackedInline):
    """The rule's reason, suggestion and rewrite per language (English is the rule's own)."""

    model = PolicyRuleTranslation
    extra = 0


@admin.register(PolicyRule)
class PolicyRuleAdmin(admin.ModelAdmin):
    list_display = ["term", "reason", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["term", "reason"]
    inlines = [PolicyRuleTranslationInline]


@admin.register(PolicyRefusal)
class PolicyRefusalAdmin(admin.ModelAdmin):
    """Refused prompts for review: operators mark them reviewed; nothing else changes."""

    list_display = ["created_at", "workspace", "user", "rule", "prompt", "reviewed"]
    list_filter = ["reviewed", "rule"]
    search_fields = ["prompt", "workspace__name", "user__email"]
    readonly_fields = ["created_at", "workspace", "user", "rule", "prompt"]
    actions = ["mark_reviewed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=gettext_lazy("Mark as reviewed"))
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[PolicyRefusal]) -> None:
        queryset.update(reviewed=True)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "workspace", "enabled", "failing_since", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "workspace__name"]
    readonly_fields = ["secret", "failing_since", "disabled_reason", "created_at"]
    raw_id_fields = ["workspace"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = [
        "number", "started_at", "latency_ms", "response_status", "error", "succeeded",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every delivery and its attempts; operators may send one again."""

    list_display = ["created_at", "workspace", "event", "url", "status", "attempts", "job"]
    list_filter = ["status", "event"]
    search_fields = ["url", "workspace__name", "job__id"]
    readonly_fields = [
        "workspace", "job", "endpoint", "url", "event", "payload", "status", "attempts",
        "next_attempt_at", "retry_until", "created_at",
    ]  # fmt: skip
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(
        description=gettext_lazy("Redeliver the selected deliveries (same webhook-id and body)")
    )
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent = 0
        for delivery in queryset:
            try:
                webhook_redeliver(delivery=delivery)
                sent += 1
            except DomainError as error:
                self.message_user(request, f"{delivery.pk}: {error.message}", messages.WARNING)
        self.message_user(
            request,
            ngettext("%(sent)d delivery queued again.", "%(sent)d deliveries queued again.", sent)
            % {"sent": sent},
        )
