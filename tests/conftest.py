"""Shared fixtures. The suite runs on the PostgreSQL and Redis that `make test` starts."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.apps import apps as django_apps
from django.conf import settings
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


def make_person(email: str, plan: str | None = None) -> Person:
    user = user_signup(email=email, password=PASSWORD)
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
