"""Every form on the pages is refused without its CSRF token."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from generation.models import Job
from tests.conftest import Person
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db


def test_every_form_carries_a_csrf_token_and_posting_without_one_is_refused(
    alice: Person,
) -> None:
    alice.client().post("/api/v1/generations", {"prompt": "a red circle"}, format="json")
    job = Job.objects.get()
    job.images.create(workspace=alice.workspace, index=0, file="x.png", width=8, height=8, seed=1)
    client = signed_in(alice, enforce_csrf_checks=True)
    actions: set[str] = set()
    for path in ["/studio/", "/edit/", "/gallery/", "/billing/", "/keys/", "/team/"]:
        html = client.get(path).content.decode()
        for form in re.findall(r"<form\b.*?</form>", html, flags=re.S):
            if 'method="post"' not in form:
                continue
            assert 'name="csrfmiddlewaretoken"' in form, form
            actions.add(
                re.search(r'action="([^"]*)"', form).group(1) if "action=" in form else path
            )
    # the studio's, edit's, job cancel, image delete, keys, team and switch/logout forms
    assert {
        "/studio/",
        "/edit/",
        f"/jobs/{job.id}/cancel/",
        "/keys/",
        "/accounts/logout/",
    } <= actions
    assert {"/team/invite/", "/workspaces/new/", "/workspaces/switch/"} & actions
    for action in sorted(actions):
        assert client.post(action, {}).status_code == 403, action
    assert Job.objects.get().status == "queued"


def test_the_sign_up_and_log_in_forms_need_the_token() -> None:
    client = Client(enforce_csrf_checks=True)
    for path in ["/accounts/signup/", "/accounts/login/", "/accounts/password/reset/"]:
        assert 'name="csrfmiddlewaretoken"' in client.get(path).content.decode()
        assert client.post(path, {"email": "x@example.com"}).status_code == 403
