from __future__ import annotations

from django.urls import path

from generation import api, events_api, status_api

urlpatterns = [
    path("generations", api.GenerationListCreateApi.as_view()),
    path("generations/<uuid:job_id>", api.GenerationDetailApi.as_view()),
    path("generations/<uuid:job_id>/cancel", api.GenerationCancelApi.as_view()),
    path("generations/<uuid:job_id>/events", events_api.JobEventsView.as_view()),
    path("edits", api.EditCreateApi.as_view()),
    path("status", status_api.StatusApi.as_view()),
    path("images/<uuid:image_id>", api.ImageContentApi.as_view()),
]
