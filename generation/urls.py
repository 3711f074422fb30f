from __future__ import annotations

from django.urls import path

from generation import api, events_api, provenance_api, status_api, webhooks_api

urlpatterns = [
    path("generations", api.GenerationListCreateApi.as_view()),
    path("generations/<uuid:job_id>", api.GenerationDetailApi.as_view()),
    path("generations/<uuid:job_id>/cancel", api.GenerationCancelApi.as_view()),
    path("generations/<uuid:job_id>/events", events_api.JobEventsView.as_view()),
    path("edits", api.EditCreateApi.as_view()),
    path("status", status_api.StatusApi.as_view()),
    path("provenance/verify", provenance_api.ProvenanceVerifyApi.as_view()),
    path("images/<uuid:image_id>", api.ImageContentApi.as_view()),
    path("webhooks", webhooks_api.WebhookEndpointListApi.as_view()),
    path("webhooks/default/secret", webhooks_api.WebhookSigningSecretApi.as_view()),
    path("webhooks/<uuid:endpoint_id>", webhooks_api.WebhookEndpointDetailApi.as_view()),
    path("webhook-deliveries", webhooks_api.WebhookDeliveryListApi.as_view()),
    path("webhook-deliveries/<uuid:delivery_id>", webhooks_api.WebhookDeliveryDetailApi.as_view()),
    path(
        "webhook-deliveries/<uuid:delivery_id>/redeliver",
        webhooks_api.WebhookRedeliverApi.as_view(),
    ),
]
