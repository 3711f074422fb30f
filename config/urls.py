from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse
from django.urls import include, path
from django.utils import translation
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.api_errors import json_404, json_500
from config.health import healthz, readyz


class EnglishSchemaView(SpectacularAPIView):
    """The OpenAPI document is English whatever the caller's language (the API's error
    messages follow Accept-Language; its documentation does not)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with translation.override("en"):
            response = super().dispatch(request, *args, **kwargs)
            if isinstance(response, SimpleTemplateResponse):
                response.render()  # lazy strings in the schema become English here
        return response


urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("", include("generation.metrics_urls")),  # /metrics
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.urls")),
    path("api/v1/", include("billing.urls")),
    path("api/v1/", include("generation.urls")),
    path("v1/", include("generation.openai_urls")),
    path("api/schema/", EnglishSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("accounts/", include("allauth.urls")),
    path("", include("web.urls")),
]


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/v1/"))


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return json_404(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return json_500(request)
    return defaults.server_error(request)
