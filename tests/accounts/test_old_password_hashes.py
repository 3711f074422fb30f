"""Passwords hashed before Argon2id still log in, and are rehashed with Argon2id then."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import user_signup
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def login(email: str, password: str) -> int:
    response = APIClient().post(
        "/api/v1/login", {"email": email, "password": password}, format="json"
    )
    return response.status_code


@pytest.mark.parametrize("old_hasher", ["pbkdf2_sha256", "pbkdf2_sha1"])
def test_an_old_pbkdf2_password_logs_in_and_is_upgraded_to_argon2id(old_hasher: str) -> None:
    user = user_signup(email="olga@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    User.objects.filter(pk=user.pk).update(password=make_password(PASSWORD, hasher=old_hasher))

    assert login("olga@example.com", "not the password") == 401
    assert User.objects.get(pk=user.pk).password.startswith(f"{old_hasher}$")  # untouched
    assert login("olga@example.com", PASSWORD) == 200
    upgraded = User.objects.get(pk=user.pk).password
    assert upgraded.startswith("argon2$argon2id$")
    assert login("olga@example.com", PASSWORD) == 200  # and the new hash works too


def test_new_passwords_are_hashed_with_argon2id_at_owasp_parameters() -> None:
    user = user_signup(email="nina@example.com", password=PASSWORD)
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
