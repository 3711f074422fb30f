from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db.models import QuerySet

from accounts.models import ApiKey, Invitation, Membership, User, Workspace


def workspaces_for(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-personal", "name")


def workspace_for_user(user: User, workspace_id: str | None = None) -> Workspace | None:
    """The workspace a signed-in user is acting in: the chosen one, else their personal one."""
    workspaces = workspaces_for(user)
    if workspace_id:
        chosen = workspaces.filter(pk=workspace_id).first()
        if chosen is not None:
            return chosen
    return workspaces.first()


def membership_of(user: User, workspace: Workspace) -> Membership | None:
    return Membership.objects.filter(user=user, workspace=workspace).first()


def api_keys_for(workspace: Workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace).order_by("-created_at")


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(workspace=workspace).select_related("user").order_by("created_at")
    )


def open_invitations_for(workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.filter(workspace=workspace, accepted_at__isnull=True).order_by(
        "-created_at"
    )


def user_is_verified(user: User) -> bool:
    """Whether the person has followed a link mailed to one of their addresses."""
    return EmailAddress.objects.filter(user=user, verified=True).exists()
