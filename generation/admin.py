from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from billing.models import Subscription
from billing.selectors import default_plan
from config.admin import BoundedCountPaginator, ReadOnlyAdmin, ReadOnlyInline
from config.errors import DomainError
from generation.models import (
    Image,
    Job,
    OutputRefusal,
    PolicyRefusal,
    PolicyRule,
    PolicyRuleTranslation,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from generation.webhooks import webhook_redeliver
from operations.services import operator_job_cancel, operator_job_refund, operator_job_retry


class ImageInline(ReadOnlyInline):
    model = Image
    fields = ["index", "file", "width", "height", "seed", "created_at"]
    readonly_fields = fields


class RecentErrorCodeFilter(admin.SimpleListFilter):
    """Error codes of the jobs that finished in the last day (an index range on finished_at,
    not a DISTINCT over every job ever made)."""

    title = _("error code")
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        since = timezone.now() - timedelta(days=1)
        codes = (
            Job.objects.filter(finished_at__gte=since)
            .exclude(error_code="")
            .order_by()
            .values_list("error_code", flat=True)
            .distinct()
        )
        return [(code, code) for code in sorted(codes)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        return queryset.filter(error_code=value) if value else queryset


def _seconds(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = max(delta.total_seconds(), 0)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Read-only: a job changes state only through the actions below (audited services),
    which keep the quota ledger and the fair queue in step with it."""

    list_display = [
        "short_id", "thumbnail", "short_prompt", "workspace_link", "plan", "status", "image_count",
        "duration", "queue_wait", "error_code", "created_at",
    ]  # fmt: skip
    list_display_links = ["short_id"]
    list_filter = ["status", "lane", "kind", RecentErrorCodeFilter, "created_at"]
    search_fields = ["id", "workspace__name", "workspace__memberships__user__email", "prompt"]
    search_help_text = _(
        "A job id, a member's email address, or words of a workspace's name or of a prompt."
    )
    list_select_related = ["workspace"]
    list_per_page = 50
    # Millions of jobs: no COUNT over all of them, no date drill-down (a DISTINCT over all).
    show_full_result_count = False
    paginator = BoundedCountPaginator
    inlines = [ImageInline]
    actions = ["cancel", "retry", "refund"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        plan = Subscription.objects.filter(
            workspace=OuterRef("workspace_id"), status__in=Subscription.PLAN_STATUSES
        ).values("plan__name")[:1]
        first_image = Image.objects.filter(job=OuterRef("pk")).order_by("index").values("pk")[:1]
        return (
            super()
            .get_queryset(request)
            .annotate(
                plan_name=Coalesce(Subquery(plan), Value(default_plan().name)),
                first_image_id=Subquery(first_image),
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:  # a job id: one index probe
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        if "@" in term and " " not in term:  # a member's address: their workspaces' jobs
            return queryset.filter(workspace__memberships__user__email__iexact=term), False
        return super().get_search_results(request, queryset, term)

    def get_urls(self) -> list[URLPattern]:
        image = path(
            "image/<uuid:image_id>/",
            self.admin_site.admin_view(self.image_view),
            name="generation_job_image",
        )
        return [image, *super().get_urls()]

    def image_view(self, request: HttpRequest, image_id: uuid.UUID) -> FileResponse:
        """An image's PNG for operators (staff only, through admin_view)."""
        image = get_object_or_404(Image, pk=image_id)
        return FileResponse(image.file.open("rb"), content_type="image/png")

    @admin.display(description=_("job"), ordering="id")
    def short_id(self, job: Job) -> str:
        return str(job.pk)[:8]

    @admin.display(description=_("image"))
    def thumbnail(self, job: Job) -> str:
        image_id = getattr(job, "first_image_id", None)
        if image_id is None:
            return "-"
        url = reverse("admin:generation_job_image", args=[image_id])
        return format_html(
            '<img src="{}" alt="" width="48" height="48" loading="lazy" '
            'style="object-fit:cover;border-radius:4px">',
            url,
        )

    @admin.display(description=_("prompt"))
    def short_prompt(self, job: Job) -> str:
        return Truncator(job.prompt).chars(60)

    @admin.display(description=_("workspace"), ordering="workspace__name")
    def workspace_link(self, job: Job) -> str:
        url = reverse("admin:accounts_workspace_change", args=[job.workspace_id])
        return format_html('<a href="{}">{}</a>', url, job.workspace)

    @admin.display(description=_("plan"))
    def plan(self, job: Job) -> str:
        return getattr(job, "plan_name", "")

    @admin.display(description=_("images"), ordering="num_images")
    def image_count(self, job: Job) -> int:
        return job.num_images

    @admin.display(description=_("duration"))
    def duration(self, job: Job) -> str:
        if job.started_at is None:
            return "-"
        return _seconds((job.finished_at or timezone.now()) - job.started_at)

    @admin.display(description=_("queue wait"))
    def queue_wait(self, job: Job) -> str:
        return _seconds((job.started_at or job.finished_at or timezone.now()) - job.created_at)

    @admin.action(description=_("Cancel the selected jobs (their images are given back)"))
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

    @admin.action(description=_("Retry the selected failed or cancelled jobs as new jobs"))
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

    @admin.action(description=_("Refund the selected jobs' images to their quota"))
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
    list_display = ["term", "reason", "level", "active", "created_at"]
    list_filter = ["active", "level"]
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

    @admin.action(description=_("Mark as reviewed"))
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[PolicyRefusal]) -> None:
        queryset.update(reviewed=True)


@admin.register(OutputRefusal)
class OutputRefusalAdmin(admin.ModelAdmin):
    """Jobs whose generated images the safety check refused, for review: the prompt, never
    the image (none was kept). Operators mark them reviewed; nothing else changes."""

    list_display = ["created_at", "workspace", "user", "moderation_level", "prompt", "reviewed"]
    list_filter = ["reviewed", "moderation_level"]
    search_fields = ["prompt", "workspace__name", "user__email"]
    readonly_fields = [
        "created_at", "workspace", "user", "job", "prompt", "negative_prompt",
        "moderation_level", "images_flagged",
    ]  # fmt: skip
    actions = ["mark_reviewed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Mark as reviewed"))
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[OutputRefusal]) -> None:
        queryset.update(reviewed=True)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "workspace", "enabled", "failing_since", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "workspace__name"]
    readonly_fields = ["secret", "failing_since", "disabled_reason", "created_at"]
    raw_id_fields = ["workspace"]


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    readonly_fields = [
        "number", "started_at", "latency_ms", "response_status", "error", "succeeded",
    ]  # fmt: skip


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every delivery and its attempts (a record: read-only); operators may send one again."""

    list_display = ["created_at", "workspace", "event", "url", "status", "attempts", "job"]
    list_filter = ["status", "event"]
    search_fields = ["url", "workspace__name", "job__id"]
    readonly_fields = [
        "workspace", "job", "endpoint", "url", "event", "payload", "status", "attempts",
        "next_attempt_at", "retry_until", "created_at",
    ]  # fmt: skip
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.action(description=_("Redeliver the selected deliveries (same webhook-id and body)"))
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
