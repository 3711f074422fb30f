"""GET /api/v1/me: the caller, the workspace the request acts in, and every workspace they
belong to (personal first, then by name), as MeOutput documents."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Workspace
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
