from __future__ import annotations

import uuid

from allauth.account.models import EmailAddress
from django.db import connection
from django.db.models import QuerySet

from accounts.models import ApiKey, Invitation, Membership, User, Workspace


def workspaces_for(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-personal", "name")


# workspaces_for's ids and names in its order, without the ORM's compilation of the join
# (a fifth of GET /api/v1/me's CPU); tests/accounts/test_me.py holds the two alike.
WORKSPACE_REFS_SQL = """
    SELECT w.id, w.name FROM accounts_workspace AS w
    JOIN accounts_membership AS m ON m.workspace_id = w.id
    WHERE m.user_id = %s
    ORDER BY w.personal DESC, w.name
"""


def workspace_refs_for(user: User) -> list[tuple[uuid.UUID, str]]:
    """(id, name) of each workspace `user` belongs to, personal first, then by name."""
    with connection.cursor() as cursor:
        cursor.execute(WORKSPACE_REFS_SQL, [user.pk])
        return cursor.fetchall()


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
