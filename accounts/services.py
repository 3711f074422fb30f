"""Writes for accounts: sign-up, verification, workspaces, members, API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.key_cache import verified_keys
from accounts.models import ApiKey, Invitation, Membership, User, Workspace
from accounts.selectors import user_is_verified
from config.errors import DomainError

API_KEY_PREFIX = "atl"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


class WeakPassword(DomainError):
    code = "weak_password"

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages), param="password")


class EmailUnverified(DomainError):
    code = "email_unverified"

    def __init__(self, *, email: str) -> None:
        super().__init__(
            f"Confirm your email address first: follow the link we sent to {email} "
            "(a new one is on its way if the last was sent more than a few minutes ago).",
            email=email,
        )


class AdminRequired(DomainError):
    code = "admin_required"

    def __init__(self, message: str) -> None:
        super().__init__(message)


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


@dataclass(frozen=True)
class ApiSignup:
    """What an API sign-up answers. `address` is the new, unverified address to mail a link
    to; None when the address already had an account, which the answer must not reveal."""

    email: str
    secret: str
    address: EmailAddress | None


def api_signup(*, email: str, password: str, name: str = "") -> ApiSignup:
    """Sign up through the API: an account with its personal workspace, an unverified address
    and a first key that works once the address is verified.

    An address that already has an account gets nothing, and the answer looks the same: a
    secret of a key's shape that matches no key (the caller mails the address's owner
    instead of a link). Password rules are checked first, so both answer a weak password
    alike, and the password is hashed either way, so both take about as long.
    """
    email = User.objects.normalize_email(email).lower()
    try:
        validate_password(password, User(email=email, name=name))
    except DjangoValidationError as exc:
        raise WeakPassword(exc.messages) from None
    if not User.objects.filter(email__iexact=email).exists():
        try:
            return _api_signup_new(email=email, password=password, name=name)
        except IntegrityError:
            pass  # the same address signed up a moment ago, in another request
    make_password(password)
    return ApiSignup(email=email, secret=_unmatched_secret(), address=None)


@transaction.atomic
def _api_signup_new(*, email: str, password: str, name: str) -> ApiSignup:
    user = user_signup(email=email, password=password, name=name)
    address = EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    _key, secret = api_key_create(
        workspace=Workspace.objects.get(memberships__user=user, personal=True),
        user=user,
        name="first key",
        awaiting_verification=True,
    )
    return ApiSignup(email=email, secret=secret, address=address)


def _unmatched_secret() -> str:
    return f"{API_KEY_PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def email_address_to_verify(*, user: User) -> EmailAddress:
    """The address to mail a verification link to: the person's primary one, set up on the
    spot for an account made without one (by an operator, say)."""
    address = EmailAddress.objects.filter(user=user).order_by("-primary").first()
    if address is None:
        address = EmailAddress.objects.create(
            user=user, email=user.email.lower(), primary=True, verified=False
        )
    return address


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


def api_key_create(
    *, workspace: Workspace, user: User, name: str = "", awaiting_verification: bool = False
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never shown again."""
    prefix = secrets.token_hex(6)
    raw = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        workspace=workspace,
        created_by=user,
        name=name,
        prefix=prefix,
        hashed_secret=hash_api_key(raw),
        awaiting_verification=awaiting_verification,
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    api_keys_revoke(keys=ApiKey.objects.filter(pk=key.pk))


@transaction.atomic
def api_keys_revoke(*, keys: QuerySet[ApiKey]) -> list[ApiKey]:
    """Revoke those of `keys` that still work and return them. Every revocation goes through
    here, so anything that remembers keys (a cache of lookups) has one place to forget them."""
    now = timezone.now()
    revoked = list(keys.select_for_update().filter(revoked_at__isnull=True))
    ApiKey.objects.filter(pk__in=[key.pk for key in revoked]).update(revoked_at=now)
    for key in revoked:
        key.revoked_at = now
        # At once in this process; every other process forgets it within
        # API_KEY_CACHE_SECONDS.
        verified_keys.forget(key.hashed_secret)
    return revoked


def api_key_revoke_by_member(*, key: ApiKey, membership: Membership) -> None:
    """Revoke a key of the member's workspace: owners and admins revoke any of its keys,
    other members only those they made."""
    if key.workspace_id != membership.workspace_id:
        raise ValueError("the key belongs to another workspace")  # views scope their lookups
    if membership.role not in MANAGER_ROLES and key.created_by_id != membership.user_id:
        raise AdminRequired(
            "Only the workspace's owner or admins can revoke keys that other members made."
        )
    api_key_revoke(key=key)


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None. Records use at most once a minute.

    A key works while it is not revoked, its creator's address is verified (for the key an
    API sign-up hands out) and its creator is active and still a member of its workspace.
    All of it is one indexed query, and a key verified in the last API_KEY_CACHE_SECONDS is
    taken from this process's memory: this runs on every API request.
    """
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    hashed = hash_api_key(raw)
    key = verified_keys.get(hashed)
    if key is None:
        creator_is_member = Membership.objects.filter(
            workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id")
        )
        key = (
            ApiKey.objects.select_related("workspace", "created_by")
            .filter(
                Exists(creator_is_member),
                prefix=parts[1],
                revoked_at__isnull=True,
                awaiting_verification=False,
                created_by__is_active=True,
            )
            .first()
        )
        if key is None or not secrets.compare_digest(key.hashed_secret, hashed):
            return None
        verified_keys.remember(hashed, key, settings.API_KEY_CACHE_SECONDS)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now  # the remembered key too: one update a minute per process
    return verified_keys.copy_for_request(key)


def api_keys_release_on_verification(*, user: User) -> int:
    """The person followed the link to their address: the keys their API sign-up made start
    working. Returns how many."""
    return ApiKey.objects.filter(
        created_by=user, awaiting_verification=True, revoked_at__isnull=True
    ).update(awaiting_verification=False)


def api_keys_revoke_on_password_reset(*, user: User) -> list[ApiKey]:
    """A password reset on an account whose address nobody ever verified takes the account
    back from whoever signed up with that address: every key made before it is revoked.
    (On a verified account the keys are the owner's own, and stay.) Returns those revoked."""
    if user_is_verified(user):
        return []
    return api_keys_revoke(keys=ApiKey.objects.filter(created_by=user))


@transaction.atomic
def membership_remove(*, membership: Membership) -> list[ApiKey]:
    """Take a person out of a workspace and revoke the keys they made in it.

    Their keys would stop working anyway (authentication checks membership); revoking them
    makes that visible and lasting, should the person be invited back. Returns the keys
    revoked, for the caller's audit (accounts does not know the audit log).
    """
    revoked = api_keys_revoke(
        keys=ApiKey.objects.filter(
            workspace_id=membership.workspace_id, created_by_id=membership.user_id
        )
    )
    membership.delete()
    return revoked


def workspace_suspend(*, workspace: Workspace) -> bool:
    """Stop a workspace from submitting jobs; returns False if it already was suspended."""
    done = (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=True).update(
            suspended_at=timezone.now()
        )
        == 1
    )
    verified_keys.forget_workspace(workspace.pk)  # other processes: API_KEY_CACHE_SECONDS
    return done


def workspace_unsuspend(*, workspace: Workspace) -> bool:
    done = (
        Workspace.objects.filter(pk=workspace.pk, suspended_at__isnull=False).update(
            suspended_at=None
        )
        == 1
    )
    verified_keys.forget_workspace(workspace.pk)
    return done


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
