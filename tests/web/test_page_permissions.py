"""Every page with alice (owner), bob (another workspace) and charlie (no account)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Invitation, Membership
from accounts.services import workspace_create
from billing.models import Plan, Subscription
from generation.models import Image, Job
from tests.conftest import Person

pytestmark = pytest.mark.django_db

PAGES = ["/studio/", "/edit/", "/gallery/", "/billing/", "/keys/", "/team/"]


@pytest.fixture
def alices_image(alice: Person) -> Image:
    alice.client().post("/api/v1/generations", {"prompt": "a red circle"}, format="json")
    job = Job.objects.get(workspace=alice.workspace)
    return job.images.create(
        workspace=alice.workspace, index=0, file="images/a.png", width=64, height=64, seed=1
    )


@pytest.mark.parametrize("path", PAGES)
def test_charlie_is_sent_to_log_in(charlie_web: Client, path: str) -> None:
    response = charlie_web.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_alice_sees_her_workspaces_pages(alice_web: Client, path: str) -> None:
    assert alice_web.get(path).status_code == 200


def test_bob_cannot_reach_alices_job_image_or_key(
    alice: Person, bob_web: Client, alices_image: Image
) -> None:
    job = alices_image.job
    key = alice.workspace.api_keys.get()
    assert bob_web.get(f"/jobs/{job.id}/").status_code == 404
    assert bob_web.get(f"/jobs/{job.id}/events/").status_code == 404
    assert bob_web.post(f"/jobs/{job.id}/cancel/").status_code == 404
    assert bob_web.get(f"/images/{alices_image.id}").status_code == 404
    assert bob_web.post(f"/gallery/{alices_image.id}/delete/").status_code == 404
    assert bob_web.post(f"/keys/{key.id}/revoke/").status_code == 404
    assert "a red circle" not in bob_web.get("/gallery/").content.decode()
    job.refresh_from_db()
    key.refresh_from_db()
    assert job.status == "queued" and key.is_active and Image.objects.exists()


def test_charlie_cannot_fetch_an_image(charlie_web: Client, alices_image: Image) -> None:
    assert charlie_web.get(f"/images/{alices_image.id}").status_code == 302


def test_charlie_cannot_follow_a_jobs_card(charlie_web: Client, alices_image: Image) -> None:
    assert charlie_web.get(f"/jobs/{alices_image.job_id}/events/").status_code == 302


def test_bob_cannot_switch_into_alices_workspace(alice: Person, bob_web: Client) -> None:
    response = bob_web.post("/workspaces/switch/", {"workspace": str(alice.workspace.pk)})
    assert response.status_code == 404


def test_alices_gallery_is_newest_first_with_download_and_delete(
    alice: Person, alice_web: Client, alices_image: Image
) -> None:
    page = alice_web.get("/gallery/").content.decode()
    assert f"/images/{alices_image.id}?download=1" in page and "Seed</dt><dd>1</dd>" in page
    response = alice_web.post(f"/gallery/{alices_image.id}/delete/", follow=True)
    assert "Image deleted." in response.content.decode()
    assert not Image.objects.exists()


def test_an_api_key_is_shown_once_and_can_be_revoked(alice: Person, alice_web: Client) -> None:
    created = alice_web.post("/keys/", {"name": "script"})
    assert created.status_code == 201
    secret = created.context["new_secret"]
    assert secret.startswith("atl_") and secret in created.content.decode()
    listing = alice_web.get("/keys/").content.decode()
    assert "script" in listing and secret not in listing
    key = alice.workspace.api_keys.get(name="script")
    alice_web.post(f"/keys/{key.id}/revoke/")
    key.refresh_from_db()
    assert not key.is_active


def test_billing_says_it_is_not_set_up_and_members_cannot_start_checkout(
    alice: Person, bob: Person, alice_web: Client, bob_web: Client, settings: object
) -> None:
    settings.STRIPE_SECRET_KEY = ""  # type: ignore[attr-defined]
    assert "Billing is not set up on this server" in alice_web.get("/billing/").content.decode()
    assert alice_web.post("/billing/checkout/", {"plan": "pro"}, follow=True).status_code == 200
    team = workspace_create(owner=alice.user, name="Studio A")
    Membership.objects.create(user=bob.user, workspace=team, role=Membership.Role.MEMBER)
    bob_web.post("/workspaces/switch/", {"workspace": str(team.pk)})
    assert bob_web.post("/billing/checkout/", {"plan": "pro"}).status_code == 403
    assert bob_web.post("/billing/portal/").status_code == 403


def test_invitations_need_a_team_plan_then_only_the_invited_person_can_accept(
    alice: Person,
    bob: Person,
    alice_web: Client,
    bob_web: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    team = workspace_create(owner=alice.user, name="Studio A")
    alice_web.post("/workspaces/switch/", {"workspace": str(team.pk)})
    refused = alice_web.post("/team/invite/", {"email": "bob@example.com"}, follow=True)
    assert "Upgrade this workspace" in refused.content.decode()
    Subscription.objects.create(workspace=team, plan=Plan.objects.get(slug="team"))
    with django_capture_on_commit_callbacks(execute=True):  # the mail goes after commit
        alice_web.post("/team/invite/", {"email": "bob@example.com"})
    invitation = Invitation.objects.get()
    [message] = mail.outbox
    assert f"/invitations/{invitation.token}/" in message.body
    assert Client().get(f"/invitations/{invitation.token}/").status_code == 302
    assert alice_web.post(f"/invitations/{invitation.token}/").status_code == 403
    accepted = bob_web.post(f"/invitations/{invitation.token}/", follow=True)
    assert "Welcome to Studio A." in accepted.content.decode()
    assert Membership.objects.filter(user=bob.user, workspace=team).exists()
    assert bob_web.post("/team/invite/", {"email": "dan@example.com"}).status_code == 403
