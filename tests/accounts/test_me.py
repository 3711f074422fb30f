"""GET /api/v1/me: the caller, the workspace the request acts in, and every workspace they
belong to (personal first, then by name), as MeOutput documents."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Workspace
from accounts.selectors import workspace_refs_for, workspaces_for
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def test_me_names_the_caller_and_each_of_their_workspaces(alice: Person, bob: Person) -> None:
    team = Workspace.objects.create(name="Zebra studio", personal=False)
    Membership.objects.create(user=alice.user, workspace=team)
    Membership.objects.create(user=bob.user, workspace=Workspace.objects.create(name="Bob's band"))
    response = alice.client().get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {
        "id": alice.user.pk,
        "email": "alice@example.com",
        "name": alice.user.name,
        "workspace": {"id": str(alice.workspace.pk), "name": alice.workspace.name},
        "workspaces": [
            {"id": str(alice.workspace.pk), "name": alice.workspace.name},
            {"id": str(team.pk), "name": "Zebra studio"},
        ],
    }


def test_the_raw_workspace_list_matches_workspaces_for(alice: Person) -> None:
    for name in ("beta", "Alpha", "alpha 2", "Ω studio"):
        Membership.objects.create(user=alice.user, workspace=Workspace.objects.create(name=name))
    assert workspace_refs_for(alice.user) == [
        (workspace.pk, workspace.name) for workspace in workspaces_for(alice.user)
    ]
