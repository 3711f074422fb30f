"""Writes for accounts: sign-up, workspaces, API keys."""

from __future__ import annotations

import copy
import hashlib
import secrets
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, User, Workspace
from config.api_errors import ApiError

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
    # At once in this process; every other process forgets it within API_KEY_CACHE_SECONDS.
    _verified_keys.forget(key.hashed_secret)


class _VerifiedKeys:
    """Keys this process verified in the last API_KEY_CACHE_SECONDS, by hashed secret.

    Every API request authenticates, and its key, workspace and owner would otherwise cost a
    query each time. Entries expire by the clock instead of being invalidated, so that a
    revocation, a suspension or a deactivation reaches every web process within that many
    seconds with no message between processes to lose.
    """

    MAX_ENTRIES = 10_000  # about 5 KB each: a bounded memory cost for a process

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, hashed: str) -> ApiKey | None:
        entry = self._entries.get(hashed)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def remember(self, hashed: str, key: ApiKey, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[hashed] = (time.monotonic() + seconds, key)

    def forget(self, hashed: str) -> None:
        with self._lock:
            self._entries.pop(hashed, None)

    def forget_workspace(self, workspace_id: object) -> None:
        with self._lock:
            self._entries = {
                h: e for h, e in self._entries.items() if e[1].workspace_id != workspace_id
            }


_verified_keys = _VerifiedKeys()


def _key_for_request(key: ApiKey) -> ApiKey:
    """A copy of a remembered key (and its workspace and owner) that one request may change."""
    copied = copy.copy(key)
    copied.workspace = copy.copy(key.workspace)
    copied.created_by = copy.copy(key.created_by)
    return copied


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None. Records use at most once a minute.

    A key verified in the last API_KEY_CACHE_SECONDS is taken from this process's memory.
    """
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    hashed = hash_api_key(raw)
    key = _verified_keys.get(hashed)
    if key is None:
        key = (
            ApiKey.objects.select_related("workspace", "created_by")
            .filter(prefix=parts[1], revoked_at__isnull=True)
            .first()
        )
        if key is None or not secrets.compare_digest(key.hashed_secret, hashed):
            return None
        if not key.created_by.is_active:
            return None
        _verified_keys.remember(hashed, key, settings.API_KEY_CACHE_SECONDS)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now  # the remembered key too: one update a minute per process
    return _key_for_request(key)


def workspace_suspend(*, workspace: Workspace) -> bool:
    """Stop a workspace from submitting jobs; returns False if it already was suspended."""
    done = (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=True).update(
            suspended_at=timezone.now()
        )
        == 1
    )
    _verified_keys.forget_workspace(workspace.pk)  # other processes: API_KEY_CACHE_SECONDS
    return done


def workspace_unsuspend(*, workspace: Workspace) -> bool:
    done = (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=False).update(
            suspended_at=None
        )
        == 1
    )
    _verified_keys.forget_workspace(workspace.pk)
    return done


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, invited_by: User, email: str, allows_teams: bool
) -> Invitation:
    """Invite `email` to a team workspace. `allows_teams` is the workspace's plan's say."""
    if workspace.personal or not allows_teams:
        raise ApiError(
            "Members can be invited to a team workspace on a plan with teams. "
            "Upgrade this workspace's plan to invite people.",
            code="teams_need_paid_plan",
            status_code=403,
        )
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ApiError(f"{email} is already a member.", code="already_member", param="email")
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
        raise ApiError(
            f"This invitation is for {invitation.email}. Sign in with that address to accept it.",
            code="invitation_wrong_user",
            status_code=403,
        )
    accepted = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if not accepted:  # a second click on the link is fine; someone else's use is not
        membership = Membership.objects.filter(user=user, workspace=invitation.workspace).first()
        if membership is None:
            raise ApiError(
                "This invitation was already used.", code="invitation_used", status_code=409
            )
        return membership
    membership, _ = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    return membership
