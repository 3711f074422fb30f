"""The URLconf of requests that say `Prefer: wait` (settings.PREFER_WAIT_URLCONF).

The submit endpoints are served by views that wait for the job; everything else resolves as
usual, through the root URLconf.
"""

from __future__ import annotations

from django.urls import include, path

from config.urls import handler404, handler500
from generation.api import EditCreateApi, GenerationListCreateApi
from generation.wait_api import SubmitAndWaitView

urlpatterns = [
    path("api/v1/generations", SubmitAndWaitView.as_view(submit_api=GenerationListCreateApi)),
    path("api/v1/edits", SubmitAndWaitView.as_view(submit_api=EditCreateApi)),
    path("", include("config.urls")),
]

__all__ = ["handler404", "handler500", "urlpatterns"]
