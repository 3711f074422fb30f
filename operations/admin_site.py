from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_ratelimit.core import get_usage

from operations.selectors import operator_dashboard


class AtelierAdminSite(admin.AdminSite):
    """The admin, with the operators' dashboard above the list of models."""

    site_header = gettext_lazy("Atelier operations")
    site_title = gettext_lazy("Atelier admin")
    index_title = gettext_lazy("Dashboard")
    index_template = "admin/atelier_index.html"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        return super().index(request, {**(extra_context or {}), "dashboard": operator_dashboard()})

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
