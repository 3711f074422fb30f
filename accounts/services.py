"""Writes for accounts: sign-up, verification, workspaces, members (API keys: accounts/keys.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.key_cache import verified_keys
from accounts.keys import API_KEY_PREFIX, api_key_create, api_keys_revoke
from accounts.models import ApiKey, Invitation, Membership, User, Workspace
from config.errors import DomainError


class WeakPassword(DomainError):
    code = "weak_password"

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages), param="password")


class EmailUnverified(DomainError):
    code = "email_unverified"

    def __init__(self, *, email: str) -> None:
        super().__init__(
            _(
                "Confirm your email address first: follow the link we sent to %(email)s "
                "(a new one is on its way if the last was sent more than a few minutes ago)."
            )
            % {"email": email},
            email=email,
        )


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
            _(
                "Members can be invited to a team workspace on a plan with teams. "
                "Upgrade this workspace's plan to invite people."
            ),
            code="teams_need_paid_plan",
        )
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise DomainError(
            _("%(email)s is already a member.") % {"email": email},
            code="already_member",
            param="email",
        )
    invitation, _created = Invitation.objects.get_or_create(
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
            _("This invitation is for %(email)s. Sign in with that address to accept it.")
            % {"email": invitation.email},
            code="invitation_wrong_user",
        )
    accepted = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if not accepted:  # a second click on the link is fine; someone else's use is not
        membership = Membership.objects.filter(user=user, workspace=invitation.workspace).first()
        if membership is None:
            raise DomainError(_("This invitation was already used."), code="invitation_used")
        return membership
    membership, _created = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    return membership


def user_language_set(*, user: User, language: str) -> None:
    """Remember the language a signed-in person chose in the header's switcher."""
    User.objects.filter(pk=user.pk).update(language=language)
    user.language = language
