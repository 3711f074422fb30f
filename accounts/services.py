"""Writes for accounts: sign-up, workspaces, API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, User, Workspace
from config.errors import DomainError

API_KEY_PREFIX = "atl"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_api_key(raw: str) -> str:
    # Keys are 256-bit random secrets, so a fast hash is enough (as GitHub and Stripe do).
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "") -> User:
    """Create a user and the personal workspace they own."""
    user = User(email=User.objects.normalize_email(email).lower(), name=name)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    personal_workspace_create(user=user)
    return user


@transaction.atomic
def personal_workspace_create(*, user: User) -> Workspace:
    """The workspace every user owns from sign-up on (the API's and the web page's)."""
    workspace = Workspace.objects.create(name=user.name or user.email, personal=True)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


@transaction.atomic
def workspace_create(*, owner: User, name: str) -> Workspace:
    workspace = Workspace.objects.create(name=name, personal=False)
    Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def api_key_create(*, workspace: Workspace, user: User, name: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never shown again."""
    prefix = secrets.token_hex(6)
    raw = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        workspace=workspace,
        created_by=user,
        name=name,
        prefix=prefix,
        hashed_secret=hash_api_key(raw),
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None. Records use at most once a minute."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    key = (
        ApiKey.objects.select_related("workspace", "created_by")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if key is None or not secrets.compare_digest(key.hashed_secret, hash_api_key(raw)):
        return None
    if not key.created_by.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def workspace_suspend(*, workspace: Workspace) -> bool:
    """Stop a workspace from submitting jobs; returns False if it already was suspended."""
    return (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=True).update(
            suspended_at=timezone.now()
        )
        == 1
    )


def workspace_unsuspend(*, workspace: Workspace) -> bool:
    return (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=False).update(
            suspended_at=None
        )
        == 1
    )


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, invited_by: User, email: str, allows_teams: bool
) -> Invitation:
    """Invite `email` to a team workspace. `allows_teams` is the workspace's plan's say."""
    if workspace.personal or not allows_teams:
        raise DomainError(
            "Members can be invited to a team workspace on a plan with teams. "
            "Upgrade this workspace's plan to invite people.",
            code="teams_need_paid_plan",
        )
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise DomainError(f"{email} is already a member.", code="already_member", param="email")
    invitation, _ = Invitation.objects.get_or_create(
        workspace=workspace,
        email=email,
        accepted_at=None,
        defaults={"invited_by": invited_by, "token": secrets.token_urlsafe(32)},
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the invited workspace. Only the invited address can accept, and only once."""
    if user.email.lower() != invitation.email.lower():
        raise DomainError(
            f"This invitation is for {invitation.email}. Sign in with that address to accept it.",
            code="invitation_wrong_user",
        )
    accepted = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if not accepted:  # a second click on the link is fine; someone else's use is not
        membership = Membership.objects.filter(user=user, workspace=invitation.workspace).first()
        if membership is None:
            raise DomainError("This invitation was already used.", code="invitation_used")
        return membership
    membership, _ = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    return membership
