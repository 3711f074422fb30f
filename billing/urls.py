from __future__ import annotations

from django.urls import path

from billing import api, subscription_api

urlpatterns = [
    path("usage", api.UsageApi.as_view()),
    path("billing", subscription_api.BillingApi.as_view()),
    path("billing/checkout", subscription_api.CheckoutApi.as_view()),
    path("billing/portal", subscription_api.PortalApi.as_view()),
    path("billing/webhook", subscription_api.StripeWebhookView.as_view()),
]
