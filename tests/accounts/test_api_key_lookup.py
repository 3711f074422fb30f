"""An API key is looked up with one statement written out (accounts/keys.py _KEY_SQL), not a
query the ORM compiles for every new client. It must keep the ORM's reading of the rules: a
key works while it is not revoked, not awaiting its creator's verification, and its creator is
active and a member of its workspace; and it must leave the key as select_related did, its
workspace and creator loaded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.key_cache import verified_keys
from accounts.keys import api_key_authenticate, api_key_create, hash_api_key
from accounts.models import ApiKey, Membership, User, Workspace
from tests.conftest import Person, make_person

pytestmark = pytest.mark.django_db


def orm_reading(prefix: str) -> ApiKey | None:
    """The rules as the ORM query before _KEY_SQL read them."""
    creator_is_member = Membership.objects.filter(
        workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id")
    )
    return (
        ApiKey.objects.select_related("workspace", "created_by")
        .filter(
            Exists(creator_is_member),
            prefix=prefix,
            revoked_at__isnull=True,
            awaiting_verification=False,
            created_by__is_active=True,
        )
        .first()
    )


def a_key(person: Person, change: Callable[[ApiKey, Person], Any] | None = None) -> str:
    key, secret = api_key_create(workspace=person.workspace, user=person.user)
    if change is not None:
        change(key, person)
    return secret


def test_the_lookup_keeps_the_orm_s_reading_for_keys_in_every_state(
    alice: Person, bob: Person
) -> None:
    carol = make_person("carol@example.com")
    team = Workspace.objects.create(name="Team")
    Membership.objects.create(user=carol.user, workspace=team, role=Membership.Role.MEMBER)
    team_secret = api_key_create(workspace=team, user=carol.user)[1]

    def leave_team(key: ApiKey, person: Person) -> None:
        Membership.objects.filter(user=person.user, workspace=key.workspace).delete()

    def deactivate(key: ApiKey, person: Person) -> None:
        User.objects.filter(pk=person.user.pk).update(is_active=False)

    def move_to_team(key: ApiKey, person: Person) -> None:  # a workspace its creator is not in
        ApiKey.objects.filter(pk=key.pk).update(workspace=team)

    secrets = {
        "working": alice.key,
        "working, in a team": team_secret,
        "revoked": a_key(alice, lambda k, p: ApiKey.objects.filter(pk=k.pk).update(
            revoked_at=timezone.now())),
        "awaiting verification": a_key(alice, lambda k, p: ApiKey.objects.filter(pk=k.pk).update(
            awaiting_verification=True)),
        "in a workspace its creator is not in": a_key(bob, move_to_team),
        "its creator left": a_key(make_person("dan@example.com"), leave_team),
        "its creator deactivated": a_key(make_person("erin@example.com"), deactivate),
    }  # fmt: skip
    expected_working = {"working", "working, in a team"}
    for state, secret in secrets.items():
        verified_keys.forget(hash_api_key(secret))  # looked up, not remembered
        prefix = secret.split("_")[1]
        reference = orm_reading(prefix)
        found = api_key_authenticate(raw=secret)
        assert (found is not None) == (state in expected_working), state
        assert (found and found.pk) == (reference and reference.pk), state
    a_working_prefix = alice.key.split("_")[1]
    assert api_key_authenticate(raw=f"atl_{a_working_prefix}_not-the-secret") is None
    assert api_key_authenticate(raw="atl_000000000000_unknown") is None
    assert api_key_authenticate(raw="not-a-key") is None


def test_a_looked_up_key_carries_its_workspace_and_creator_read_in_one_statement(
    alice: Person, django_assert_num_queries: Any
) -> None:
    ApiKey.objects.update(last_used_at=timezone.now() - timedelta(seconds=5))  # no use to record
    verified_keys.forget(hash_api_key(alice.key))
    with django_assert_num_queries(1):
        key = api_key_authenticate(raw=alice.key)
    assert key is not None
    reference = orm_reading(alice.key.split("_")[1])
    assert reference is not None
    with django_assert_num_queries(0):
        loaded = (key, key.workspace, key.created_by)
    for instance, expected in zip(
        loaded, (reference, reference.workspace, reference.created_by), strict=True
    ):
        for field in type(instance)._meta.concrete_fields:
            assert getattr(instance, field.attname) == getattr(expected, field.attname), field
        assert instance._state.adding is False and instance._state.db == "default"


def test_a_key_s_use_is_recorded_at_most_once_a_minute(alice: Person) -> None:
    ApiKey.objects.update(last_used_at=None)
    verified_keys.forget(hash_api_key(alice.key))
    first = api_key_authenticate(raw=alice.key)
    assert first is not None and first.last_used_at is not None
    stored = ApiKey.objects.get(pk=first.pk).last_used_at
    assert stored == first.last_used_at
    again = api_key_authenticate(raw=alice.key)
    assert again is not None
    assert ApiKey.objects.get(pk=first.pk).last_used_at == stored  # within the minute: kept
