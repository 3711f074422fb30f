"""API authentication: `Authorization: Bearer <key>` or a browser session.

Both set `request.workspace`, the tenant that every query of the request is scoped to.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.request import Request

from accounts.keys import api_key_authenticate
from accounts.models import ApiKey, Workspace
from accounts.selectors import workspace_for_user

SESSION_WORKSPACE_KEY = "workspace_id"


def scope_request(request: Request, *, workspace: Workspace, api_key: ApiKey | None) -> None:
    """Set the tenant every query of the request is scoped to, and the key it came with.

    DRF's Request has no such attributes in its type; views read them as request.workspace
    and request.api_key."""
    request.workspace = workspace  # type: ignore[attr-defined]
    request.api_key = api_key  # type: ignore[attr-defined]


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = gettext_lazy("Incorrect API key provided.")
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise InvalidApiKey(_("Malformed Authorization header: use 'Bearer <api key>'."))
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise InvalidApiKey() from None
        key = api_key_authenticate(raw=raw)
        if key is None:
            raise InvalidApiKey()
        scope_request(request, workspace=key.workspace, api_key=key)
        return key.created_by, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class WorkspaceSessionAuthentication(SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        workspace = workspace_for_user(user, request.session.get(SESSION_WORKSPACE_KEY))
        if workspace is None:
            raise exceptions.PermissionDenied("You do not belong to any workspace.")
        scope_request(request, workspace=workspace, api_key=None)
        return result
