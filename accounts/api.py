from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.keys import api_key_create, api_key_revoke_by_member
from accounts.mail import account_exists_send, verification_send
from accounts.models import ApiKey, User, Workspace
from accounts.selectors import (
    api_keys_for,
    membership_of,
    user_is_verified,
    workspace_refs_for,
    workspaces_for,
)
from accounts.services import EmailUnverified, api_signup, email_address_to_verify
from config.errors import DomainError
from config.openapi import ERRORS, error_response
from config.serializers import StrictSerializer


class ApiKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyList(serializers.Serializer):
    data = ApiKeyOutput(many=True)


class ApiKeyCreated(ApiKeyOutput):
    key = serializers.CharField(help_text="The secret, shown this once.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "key"]


class WorkspaceRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    workspace = WorkspaceRef()
    workspaces = WorkspaceRef(many=True)


class CredentialsInput(StrictSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class SignupInput(CredentialsInput):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class SignupOutput(serializers.Serializer):
    email = serializers.EmailField()
    api_key = serializers.CharField(
        help_text="The secret, shown this once. It works once the address is verified."
    )
    message = serializers.CharField()


def _me(user: User, workspace: Workspace) -> dict[str, Any]:
    """MeOutput's shape, built directly: one raw query of two columns, no serializer (half
    of the request's CPU when it ran through MeOutput)."""
    workspaces = workspace_refs_for(user)
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "workspace": {"id": str(workspace.pk), "name": workspace.name},
        "workspaces": [{"id": str(pk), "name": name} for pk, name in workspaces],
    }


def _address_in_body(group: str, request: Request) -> str:
    data = request.data
    email = data.get("email") if isinstance(data, dict) else None
    return str(email).strip().lower() if email else ""


def _auth_rate(group: str, request: Request) -> str:
    return settings.AUTH_RATE


# Attempts per IP and per address: guessing one person's password from many addresses, or
# filling someone's inbox with sign-up mails, runs into one limit or the other.
ip_limited = method_decorator(ratelimit(key="ip", rate=_auth_rate, block=True), name="post")
address_limited = method_decorator(
    ratelimit(key=_address_in_body, rate=_auth_rate, block=True), name="post"
)


class JsonOnlyMixin:
    """Sign-up and login read JSON only. A page on another site can make a browser POST a
    form or text/plain cross-site without asking, but not application/json (that needs a
    CORS preflight, which nothing here answers): so no other site can log a visitor into an
    account of its choosing (login CSRF) or sign them up. DRF exempts these views from
    Django's CSRF check, which would need a token that an API client does not have."""

    parser_classes = [JSONParser]


@ip_limited
@address_limited
class SignupApi(JsonOnlyMixin, APIView):
    """Create an account with its personal workspace, mail a link to verify the address, and
    hand out a first API key (shown once) that works once the link is followed. An address
    that already has an account is answered alike (its owner is mailed instead)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Sign up: account, personal workspace and a first API key, which works once "
        "the address is verified by the mailed link",
        request=SignupInput,
        responses={201: SignupOutput, 429: error_response(ERRORS[429])},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = SignupInput(data=request.data)
        data.is_valid(raise_exception=True)
        signup = api_signup(**data.validated_data)
        # api_signup has committed: the mail can go now
        if signup.address is not None:
            verification_send(request._request, signup.address, signup=True)
        else:
            account_exists_send(request._request, signup.email)
        message = (
            f"We sent a link to {signup.email}. Follow it to verify the address: the API key "
            "works from then on."
        )
        body = {"email": signup.email, "api_key": signup.secret, "message": message}
        return Response(SignupOutput(body).data, status=201)


@ip_limited
@address_limited
class LoginApi(JsonOnlyMixin, APIView):
    """Start a browser session; only for a verified address."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Start a browser session",
        request=CredentialsInput,
        responses={
            200: MeOutput,
            401: error_response("Wrong email or password."),
            403: error_response(
                "The address is not verified yet (`email_unverified`): a link is mailed."
            ),
            429: error_response(ERRORS[429]),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = CredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            email=data.validated_data["email"].lower(),
            password=data.validated_data["password"],
        )
        if user is None:
            raise DomainError(_("Wrong email or password."), code="invalid_credentials")
        # Only after the password: an unknown address and a wrong password answer alike.
        if not user_is_verified(user):
            verification_send(request._request, email_address_to_verify(user=user), signup=False)
            raise EmailUnverified(email=user.email)
        login(request._request, user)
        return Response(_me(user, workspaces_for(user).first()))


class LogoutApi(APIView):
    @extend_schema(summary="End the session", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=204)


class MeApi(APIView):
    @extend_schema(summary="You and your workspaces", responses={200: MeOutput})
    def get(self, request: Request) -> Response:
        return Response(_me(request.user, request.workspace))


class ApiKeyInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class SessionOnlyForChanges(BasePermission):
    """Keys are made and revoked by a signed-in person, never with a key: a leaked key must
    not be able to mint its own replacement or revoke the owner's."""

    message = "Creating and revoking API keys needs a signed-in session, not an API key."
    code = "session_required"

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or getattr(request, "api_key", None) is None


class ApiKeyListCreateApi(APIView):
    """The workspace's keys; a member creates their own (with a session)."""

    permission_classes = [IsAuthenticated, SessionOnlyForChanges]

    @extend_schema(summary="The workspace's API keys", responses={200: ApiKeyList})
    def get(self, request: Request) -> Response:
        return Response(ApiKeyList({"data": api_keys_for(request.workspace)}).data)

    @extend_schema(
        summary="Create an API key (its secret is shown once); needs a session, not a key",
        request=ApiKeyInput,
        responses={201: ApiKeyCreated},
    )
    def post(self, request: Request) -> Response:
        data = ApiKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = api_key_create(
            workspace=request.workspace, user=request.user, name=data.validated_data["name"]
        )
        key.key = secret  # the secret, shown this once: never stored
        return Response(ApiKeyCreated(key).data, status=201)


class ApiKeyRevokeApi(APIView):
    """Owners and admins revoke any key of the workspace, members their own (with a session)."""

    permission_classes = [IsAuthenticated, SessionOnlyForChanges]

    @extend_schema(
        summary="Revoke an API key: owners and admins any, members their own; needs a session",
        responses={204: None},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        key = get_object_or_404(api_keys_for(request.workspace), pk=key_id)
        api_key_revoke_by_member(key=key, membership=membership_of(request.user, request.workspace))
        return Response(status=204)
