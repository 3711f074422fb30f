"""OpenAI's images API, for tools built on it: same admission, quotas and errors as api/v1."""

from __future__ import annotations

from django.urls import path

from generation import openai_api

urlpatterns = [
    path("images/generations", openai_api.OpenAIImagesView.as_view()),
    path("images/edits", openai_api.OpenAIEditsView.as_view()),
    path("images/content/<uuid:image_id>", openai_api.SignedImageContentApi.as_view()),
    path("models", openai_api.ModelListApi.as_view()),
    path("models/<path:model_id>", openai_api.ModelDetailApi.as_view()),
]
