from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.translation import gettext_lazy as _
from django_ratelimit.core import get_usage

from operations.charts import stacked_bars
from operations.selectors import MINUTES, operator_dashboard_cached


class AtelierAdminSite(admin.AdminSite):
    """The admin, with the operators' dashboard of the last hour above the list of models;
    the dashboard redraws itself every few seconds (htmx fetching `dashboard/`)."""

    site_header = _("Atelier operations")
    site_title = _("Atelier admin")
    index_title = _("The last hour")
    index_template = "admin/atelier_index.html"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        return super().index(request, {**(extra_context or {}), **dashboard_context()})

    def get_urls(self) -> list[URLResolver | URLPattern]:
        dashboard = path(
            "dashboard/", self.admin_view(self.dashboard_view), name="operations_dashboard"
        )
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """The dashboard alone, for htmx to swap in."""
        return TemplateResponse(request, "admin/operations/dashboard.html", dashboard_context())

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The operators' door gets the same limit as the API's login: per IP and per address.
        if request.method == "POST":
            for key in ("ip", "post:username"):
                usage = get_usage(
                    request, group="admin-login", key=key, rate=settings.AUTH_RATE, increment=True
                )
                if usage and usage["should_limit"]:
                    return HttpResponse(
                        _("Too many sign-in attempts. Wait a while and try again."),
                        status=429,
                        headers={"Retry-After": str(max(usage["time_left"], 1))},
                        content_type="text/plain",
                    )
        return super().login(request, extra_context)


def dashboard_context() -> dict[str, Any]:
    dashboard = operator_dashboard_cached()
    span = {"start_label": _("%(minutes)d min ago") % {"minutes": MINUTES}, "end_label": _("now")}
    charts = {
        "images": stacked_bars(
            dashboard.images_per_minute_by_plan, label=_("Images per minute by plan"), **span
        ),
        "failures": stacked_bars(
            {_("failed"): dashboard.failures_per_minute}, label=_("Failures per minute"), **span
        ),
    }
    if dashboard.refusals_per_minute_by_code is not None:
        charts["refusals"] = stacked_bars(
            dashboard.refusals_per_minute_by_code, label=_("Refusals per minute by code"), **span
        )
    return {"dashboard": dashboard, "charts": charts}
