from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.decorators import ratelimit
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, User
from accounts.selectors import api_keys_for, workspaces_for
from accounts.services import api_key_create, api_key_revoke, user_signup
from config.errors import DomainError
from config.serializers import StrictSerializer


class ApiKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class CredentialsInput(StrictSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class SignupInput(CredentialsInput):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


def _me(user: User, workspace: object) -> dict[str, object]:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "workspace": {"id": str(workspace.pk), "name": str(workspace)},
        "workspaces": [{"id": str(w.pk), "name": w.name} for w in workspaces_for(user)],
    }


ip_limited = method_decorator(
    ratelimit(key="ip", rate=lambda group, request: settings.AUTH_RATE, block=True), name="post"
)


@method_decorator(csrf_exempt, name="dispatch")
@ip_limited
class SignupApi(APIView):
    """Create an account with its personal workspace, and a first API key (shown once)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        data = SignupInput(data=request.data)
        data.is_valid(raise_exception=True)
        if User.objects.filter(email__iexact=data.validated_data["email"]).exists():
            raise DomainError(
                "An account with this email exists.", code="email_taken", param="email"
            )
        try:
            user = user_signup(**data.validated_data)
        except DjangoValidationError as exc:
            raise DomainError(
                " ".join(exc.messages), code="weak_password", param="password"
            ) from None
        workspace = workspaces_for(user).first()
        _key, secret = api_key_create(workspace=workspace, user=user, name="first key")
        body = {**_me(user, workspace), "api_key": secret}
        return Response(body, status=201)


@method_decorator(csrf_exempt, name="dispatch")
@ip_limited
class LoginApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        data = CredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            email=data.validated_data["email"].lower(),
            password=data.validated_data["password"],
        )
        if user is None:
            raise DomainError("Wrong email or password.", code="invalid_credentials")
        login(request._request, user)
        return Response(_me(user, workspaces_for(user).first()))


class LogoutApi(APIView):
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=204)


class MeApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(_me(request.user, request.workspace))


class ApiKeyInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class ApiKeyListCreateApi(APIView):
    def get(self, request: Request) -> Response:
        keys = api_keys_for(request.workspace)
        return Response({"data": ApiKeyOutput(keys, many=True).data})

    def post(self, request: Request) -> Response:
        data = ApiKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = api_key_create(
            workspace=request.workspace, user=request.user, name=data.validated_data["name"]
        )
        return Response({**ApiKeyOutput(key).data, "key": secret}, status=201)


class ApiKeyRevokeApi(APIView):
    def delete(self, request: Request, key_id: str) -> Response:
        api_key_revoke(key=get_object_or_404(api_keys_for(request.workspace), pk=key_id))
        return Response(status=204)
