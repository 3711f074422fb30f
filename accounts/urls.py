from __future__ import annotations

from django.urls import path

from accounts import api

urlpatterns = [
    path("signup", api.SignupApi.as_view()),
    path("login", api.LoginApi.as_view()),
    path("logout", api.LogoutApi.as_view()),
    path("me", api.MeApi.as_view()),
    path("keys", api.ApiKeyListCreateApi.as_view()),
    path("keys/<uuid:key_id>", api.ApiKeyRevokeApi.as_view()),
]
