from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import Person


def signed_in(person: Person, *, enforce_csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(person.user)
    return client


@pytest.fixture
def alice_web(alice: Person) -> Client:
    return signed_in(alice)


@pytest.fixture
def bob_web(bob: Person) -> Client:
    return signed_in(bob)


@pytest.fixture
def charlie_web() -> Client:
    """No account."""
    return Client()
