"""Shared fixtures. The suite runs on the PostgreSQL and Redis that `make test` starts."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis
import requests
from allauth.account.models import EmailAddress
from django.apps import apps as django_apps
from django.conf import settings
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User, Workspace
from accounts.selectors import workspaces_for
from accounts.services import api_key_create, user_signup
from billing.models import Plan, Subscription

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def default_plans(db: None) -> None:
    """The plans the data migration creates (transactional tests flush them away)."""
    migration = importlib.import_module("billing.migrations.0002_default_plans")
    migration.create_plans(django_apps, None)


@pytest.fixture(autouse=True)
def _clear_rate_limits() -> Iterator[None]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("atelier:*"):
        client.delete(key)
    yield


@dataclass
class Person:
    user: User
    workspace: Workspace
    key: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client

    def session(self) -> APIClient:
        """Signed in with a session, as a browser is (keys are managed only so)."""
        client = APIClient()
        client.force_login(self.user)
        return client


def make_person(email: str, plan: str | None = None) -> Person:
    user = user_signup(email=email, password=PASSWORD)
    # The people of the tests have followed the link mailed to their address.
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    workspace = workspaces_for(user).get()
    _, key = api_key_create(workspace=workspace, user=user)
    if plan:
        Subscription.objects.create(workspace=workspace, plan=Plan.objects.get(slug=plan))
    return Person(user=user, workspace=workspace, key=key)


@pytest.fixture
def alice(db: None) -> Person:
    return make_person("alice@example.com")


@pytest.fixture
def bob(db: None) -> Person:
    return make_person("bob@example.com")


@pytest.fixture
def charlie() -> APIClient:
    """No account, no credentials."""
    return APIClient()


def small_job(**overrides: object) -> dict[str, object]:
    return {"prompt": "a red circle on a gray background", "width": 64, "height": 64, **overrides}


def verification_link(email: str) -> str:
    """The last link mailed to `email` to verify it, as its owner finds it in their inbox."""
    bodies = "\n".join(message.body for message in mail.outbox if email in message.to)
    links = re.findall(r"https?://\S+/accounts/confirm-email/\S+/", bodies)
    assert links, f"no verification link was mailed to {email}"
    return links[-1]


def follow_verification_link(email: str) -> None:
    """Open the mailed link in a browser and press Confirm (in-process)."""
    path = urlsplit(verification_link(email)).path
    browser = Client()
    assert browser.get(path).status_code == 200
    assert browser.post(path).status_code == 302


def follow_verification_link_live(email: str) -> None:
    """Open the mailed link in a browser and press Confirm, against a live server."""
    link = verification_link(email)
    with requests.Session() as browser:
        page = browser.get(link, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token, page.text
        confirmed = browser.post(
            link,
            data={"csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": link},
            timeout=10,
        )
        assert confirmed.ok, confirmed.text
