"""The workspace a signed-in person is acting in on the web pages (as for the API's
session authentication: the one stored in the session, else their personal one)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.authentication import SESSION_WORKSPACE_KEY
from accounts.models import Membership
from accounts.selectors import membership_of, workspace_for_user

View = Callable[..., HttpResponse]


def workspace_required(view: View) -> View:
    """Sign-in required; sets request.workspace and request.membership for the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        workspace = workspace_for_user(request.user, request.session.get(SESSION_WORKSPACE_KEY))
        if workspace is None:
            raise PermissionDenied("You do not belong to any workspace.")
        request.workspace = workspace
        request.membership = membership_of(request.user, workspace)
        return view(request, *args, **kwargs)

    return wrapper


def is_manager(request: HttpRequest) -> bool:
    """Owners and admins manage a workspace's team."""
    return request.membership.role in (Membership.Role.OWNER, Membership.Role.ADMIN)


def is_owner(request: HttpRequest) -> bool:
    return request.membership.role == Membership.Role.OWNER
