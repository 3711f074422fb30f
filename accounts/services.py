"""Writes for accounts: sign-up, workspaces, API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Membership, User, Workspace

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
    workspace = Workspace.objects.create(name=name or user.email, personal=True)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    return user


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
