"""The workspace's webhooks page: endpoints (owners and admins manage them; the secret is
shown once) and recent deliveries with their attempts and a redeliver button."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.errors import DomainError
from generation.models import WebhookEvent
from generation.selectors import webhook_deliveries_for, webhook_endpoints_for
from generation.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_redeliver,
)
from web.workspace import is_manager, workspace_required

RECENT_DELIVERIES = 50


def _managers_only(request: HttpRequest) -> None:
    if not is_manager(request):
        raise PermissionDenied("Only the workspace's owners and admins manage its webhooks.")


@workspace_required
def webhooks(request: HttpRequest) -> HttpResponse:
    _managers_only(request)
    context: dict[str, Any] = {"new_endpoint": None, "error": None}
    status = 200
    if request.method == "POST":
        try:
            context["new_endpoint"] = webhook_endpoint_create(
                workspace=request.workspace,
                url=request.POST.get("url", "").strip(),
                events=[e for e in request.POST.getlist("events") if e in WebhookEvent.values],
                description=request.POST.get("description", "").strip()[:200],
            )
            status = 201
        except DomainError as error:
            context["error"] = error.message
            status = 400
    context["endpoints"] = webhook_endpoints_for(request.workspace)
    context["deliveries"] = webhook_deliveries_for(request.workspace).select_related("job")[
        :RECENT_DELIVERIES
    ]
    context["events"] = WebhookEvent.choices
    return render(request, "web/webhooks.html", context, status=status)


@require_POST
@workspace_required
def webhook_toggle(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    _managers_only(request)
    endpoint = get_object_or_404(webhook_endpoints_for(request.workspace), pk=endpoint_id)
    webhook_endpoint_update(endpoint=endpoint, enabled=not endpoint.enabled)
    done = _("%(url)s enabled.") if endpoint.enabled else _("%(url)s disabled.")
    messages.success(request, done % {"url": endpoint.url})
    return redirect("web:webhooks")


@require_POST
@workspace_required
def webhook_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    _managers_only(request)
    endpoint = get_object_or_404(webhook_endpoints_for(request.workspace), pk=endpoint_id)
    endpoint.delete()
    messages.success(request, _("%(url)s removed.") % {"url": endpoint.url})
    return redirect("web:webhooks")


@require_POST
@workspace_required
def webhook_redeliver_view(request: HttpRequest, delivery_id: str) -> HttpResponse:
    _managers_only(request)
    delivery = get_object_or_404(webhook_deliveries_for(request.workspace), pk=delivery_id)
    try:
        webhook_redeliver(delivery=delivery)
        event = delivery.get_event_display().lower()
        messages.success(request, _("The %(event)s event is being sent again.") % {"event": event})
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("web:webhooks")
