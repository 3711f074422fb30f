"""A key works only while its creator is a member of its workspace, and keys are made and
revoked by a signed-in person: owners and admins any key, members their own."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Workspace
from accounts.services import api_key_authenticate, api_key_create, membership_remove
from operations.models import AuditEntry
from tests.conftest import Person, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(alice: Person) -> Workspace:
    """Alice's team workspace, Alice the owner."""
    workspace = Workspace.objects.create(name="Studio A")
    Membership.objects.create(user=alice.user, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def join(person: Person, workspace: Workspace, role: str = Membership.Role.MEMBER) -> str:
    """Make `person` a member and give them a key of `workspace`."""
    Membership.objects.create(user=person.user, workspace=workspace, role=role)
    return api_key_create(workspace=workspace, user=person.user, name=person.user.email)[1]


def session_in(person: Person, workspace: Workspace) -> APIClient:
    """Signed in as `person`, acting in `workspace` (as after switching to it)."""
    client = person.session()
    session = client.session
    session["workspace_id"] = str(workspace.id)
    session.save()
    return client


def with_key(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_removed_members_key_answers_401(team: Workspace, bob: Person) -> None:
    secret = join(bob, team)
    assert with_key(secret).get("/api/v1/me").json()["workspace"]["id"] == str(team.id)

    revoked = membership_remove(membership=Membership.objects.get(user=bob.user, workspace=team))
    assert [key.prefix for key in revoked] == [secret.split("_")[1]]
    response = with_key(secret).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert ApiKey.objects.get(prefix=secret.split("_")[1]).revoked_at is not None
    assert bob.client().get("/api/v1/me").status_code == 200  # his own workspace's key


def test_a_key_stops_working_when_its_creator_leaves_however_the_membership_goes(
    team: Workspace, bob: Person
) -> None:
    secret = join(bob, team)
    Membership.objects.filter(user=bob.user, workspace=team).delete()  # not through a service
    assert with_key(secret).get("/api/v1/me").status_code == 401
    assert with_key(secret).post("/api/v1/generations", {"prompt": "a cat"}).status_code == 401


def test_removing_a_member_in_the_admin_revokes_their_keys_and_is_audited(
    team: Workspace, bob: Person, admin_client: Client, admin_user: object
) -> None:
    secret = join(bob, team)
    memberships = list(Membership.objects.filter(workspace=team).order_by("created_at"))
    form = {
        "name": team.name,
        "created_at_0": team.created_at.strftime("%Y-%m-%d"),
        "created_at_1": team.created_at.strftime("%H:%M:%S"),
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "quota_overrides-TOTAL_FORMS": "0",
        "quota_overrides-INITIAL_FORMS": "0",
    }
    for n, membership in enumerate(memberships):
        form |= {
            f"memberships-{n}-id": str(membership.pk),
            f"memberships-{n}-workspace": str(team.pk),
            f"memberships-{n}-user": str(membership.user_id),
            f"memberships-{n}-role": membership.role,
            f"memberships-{n}-created_at_0": membership.created_at.strftime("%Y-%m-%d"),
            f"memberships-{n}-created_at_1": membership.created_at.strftime("%H:%M:%S"),
        }
        if membership.user_id == bob.user.pk:
            form[f"memberships-{n}-DELETE"] = "on"
    response = admin_client.post(f"/admin/accounts/workspace/{team.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]

    assert not Membership.objects.filter(user=bob.user, workspace=team).exists()
    assert with_key(secret).get("/api/v1/me").status_code == 401
    entry = AuditEntry.objects.get(action="membership.remove")
    assert entry.actor == admin_user and entry.target_id == str(team.pk)
    assert "bob@example.com" in entry.detail and secret.split("_")[1] in entry.detail


def test_authenticating_a_key_is_one_query(
    alice: Person, django_assert_num_queries: Any, settings: Any
) -> None:
    settings.API_KEY_CACHE_SECONDS = 0  # the lookup itself, not the process's memory of it
    api_key_authenticate(raw=alice.key)  # records the use, once a minute
    with django_assert_num_queries(1):
        assert api_key_authenticate(raw=alice.key) is not None


def test_a_key_cannot_create_or_revoke_keys(alice: Person) -> None:
    created = alice.client().post("/api/v1/keys", {"name": "replacement"}, format="json")
    assert created.status_code == 403
    assert created.json()["error"]["code"] == "session_required"
    key = ApiKey.objects.get(workspace=alice.workspace)
    revoked = alice.client().delete(f"/api/v1/keys/{key.id}")
    assert revoked.status_code == 403
    assert revoked.json()["error"]["code"] == "session_required"
    assert ApiKey.objects.filter(workspace=alice.workspace).count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None
    assert alice.client().get("/api/v1/keys").status_code == 200  # reading is fine


def test_a_member_manages_their_own_keys_but_not_others(team: Workspace, bob: Person) -> None:
    join(bob, team)
    bobs_session = session_in(bob, team)

    created = bobs_session.post("/api/v1/keys", {"name": "bob's script"}, format="json")
    assert created.status_code == 201
    assert bobs_session.delete(f"/api/v1/keys/{created.json()['id']}").status_code == 204

    alices_key = api_key_create(workspace=team, user=team.memberships.get(role="owner").user)[0]
    refused = bobs_session.delete(f"/api/v1/keys/{alices_key.id}")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    alices_key.refresh_from_db()
    assert alices_key.revoked_at is None


def test_an_admin_revokes_a_members_key(team: Workspace, bob: Person) -> None:
    carol = make_person("carol@example.com")
    join(carol, team, role=Membership.Role.ADMIN)
    bobs_key = ApiKey.objects.get(prefix=join(bob, team).split("_")[1])
    carols_session = session_in(carol, team)
    assert carols_session.delete(f"/api/v1/keys/{bobs_key.id}").status_code == 204
    bobs_key.refresh_from_db()
    assert bobs_key.revoked_at is not None


def test_on_the_keys_page_a_member_revokes_only_their_own(team: Workspace, bob: Person) -> None:
    join(bob, team)
    alices_key = api_key_create(workspace=team, user=team.memberships.get(role="owner").user)[0]
    browser = Client()
    browser.force_login(bob.user)
    session = browser.session
    session["workspace_id"] = str(team.id)
    session.save()
    page = browser.get("/keys/").content.decode()
    assert f"/keys/{alices_key.id}/revoke/" not in page
    assert page.count("/revoke/") == 1  # his own
    browser.post(f"/keys/{alices_key.id}/revoke/")
    alices_key.refresh_from_db()
    assert alices_key.revoked_at is None
