"""API keys: create, authenticate (on every API request), revoke.

A key is shown once and stored hashed; it works while it is not revoked, its creator's
address is verified and its creator is still a member of its workspace.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.key_cache import verified_keys
from accounts.models import ApiKey, Membership, User, Workspace
from accounts.selectors import user_is_verified
from config.errors import DomainError
from config.sql import column_list, joined_model_rows

API_KEY_PREFIX = "atl"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


class AdminRequired(DomainError):
    code = "admin_required"

    def __init__(self, message: str) -> None:
        super().__init__(message)


def hash_api_key(raw: str) -> str:
    # Keys are 256-bit random secrets, so a fast hash is enough (as GitHub and Stripe do).
    return hashlib.sha256(raw.encode()).hexdigest()


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
            _("Only the workspace's owner or admins can revoke keys that other members made.")
        )
    api_key_revoke(key=key)


# The key with this prefix that may work, with its workspace and creator, in one statement
# written out: the ORM compiled its select_related-and-Exists query afresh for each lookup,
# about 4 ms of CPU, where each new client (the day everyone signs up) is a lookup.
# tests/accounts/test_api_key_lookup.py holds it to the ORM's reading of the same rules.
_KEY_SQL = f"""
    SELECT {column_list(ApiKey, "api_key")}, {column_list(Workspace, "workspace")},
           {column_list(User, "creator")}
    FROM {ApiKey._meta.db_table} AS api_key
    JOIN {Workspace._meta.db_table} AS workspace ON workspace.id = api_key.workspace_id
    JOIN {User._meta.db_table} AS creator ON creator.id = api_key.created_by_id
    WHERE api_key.prefix = %(prefix)s
      AND api_key.revoked_at IS NULL
      AND NOT api_key.awaiting_verification
      AND creator.is_active
      AND EXISTS (
          SELECT 1 FROM {Membership._meta.db_table} AS member
          WHERE member.workspace_id = api_key.workspace_id
            AND member.user_id = api_key.created_by_id
      )
"""  # noqa: S608 (composed of constants: the models' tables and columns)

_KEY_USED_SQL = f"UPDATE {ApiKey._meta.db_table} SET last_used_at = %(at)s WHERE id = %(key)s"  # noqa: S608


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None. Records use at most once a minute.

    A key works while it is not revoked, its creator's address is verified (for the key an
    API sign-up hands out) and its creator is active and still a member of its workspace.
    All of it is one indexed query (_KEY_SQL), and a key verified in the last
    API_KEY_CACHE_SECONDS is taken from this process's memory: this runs on every API request.
    """
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    hashed = hash_api_key(raw)
    key = verified_keys.get(hashed)
    if key is None:
        found = joined_model_rows((ApiKey, Workspace, User), _KEY_SQL, {"prefix": parts[1]})
        if not found:
            return None
        key, workspace, creator = cast(tuple[ApiKey, Workspace, User], found[0])
        if not secrets.compare_digest(key.hashed_secret, hashed):
            return None
        key.workspace, key.created_by = workspace, creator  # as select_related leaves them
        verified_keys.remember(hashed, key, settings.API_KEY_CACHE_SECONDS)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        with connection.cursor() as cursor:
            cursor.execute(_KEY_USED_SQL, {"at": now, "key": key.pk})
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
