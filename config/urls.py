from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import api as accounts_api
from billing import api as billing_api
from billing import subscription_api
from config import openapi  # noqa: F401  (describes the native views before any schema)
from config.api_errors import json_404, json_500
from generation import api as generation_api
from generation import openai_api

api_v1 = [
    path("signup", accounts_api.SignupApi.as_view()),
    path("login", accounts_api.LoginApi.as_view()),
    path("logout", accounts_api.LogoutApi.as_view()),
    path("me", accounts_api.MeApi.as_view()),
    path("keys", accounts_api.ApiKeyListCreateApi.as_view()),
    path("keys/<uuid:key_id>", accounts_api.ApiKeyRevokeApi.as_view()),
    path("usage", billing_api.UsageApi.as_view()),
    path("billing", subscription_api.BillingApi.as_view()),
    path("billing/checkout", subscription_api.CheckoutApi.as_view()),
    path("billing/portal", subscription_api.PortalApi.as_view()),
    path("billing/webhook", subscription_api.StripeWebhookView.as_view()),
    path("generations", generation_api.GenerationListCreateApi.as_view()),
    path("generations/<uuid:job_id>", generation_api.GenerationDetailApi.as_view()),
    path("generations/<uuid:job_id>/cancel", generation_api.GenerationCancelApi.as_view()),
    path("edits", generation_api.EditCreateApi.as_view()),
    path("status", generation_api.StatusApi.as_view()),
    path("images/<uuid:image_id>", generation_api.ImageContentApi.as_view()),
]

# OpenAI's images API, for tools built on it: same admission, quotas and errors as api/v1.
openai_v1 = [
    path("images/generations", openai_api.OpenAIImagesView.as_view()),
    path("images/edits", openai_api.OpenAIEditsView.as_view()),
    path("images/content/<uuid:image_id>", openai_api.SignedImageContentApi.as_view()),
    path("models", openai_api.ModelListApi.as_view()),
    path("models/<path:model_id>", openai_api.ModelDetailApi.as_view()),
]


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer: the process answers (touches no database)."""
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("v1/", include(openai_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
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
