from __future__ import annotations

from django.urls import path

from billing import api

urlpatterns = [
    path("usage", api.UsageApi.as_view()),
    path("billing", api.BillingApi.as_view()),
    path("billing/checkout", api.CheckoutApi.as_view()),
    path("billing/portal", api.PortalApi.as_view()),
    path("billing/webhook", api.StripeWebhookView.as_view()),
]
