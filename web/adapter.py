"""django-allauth's hooks: a person who signs up on the web gets a personal workspace, as
one who signs up through the API does; following the link to an address, or resetting a
password, settles the keys an API sign-up made."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest

from accounts.models import User
from accounts.services import (
    api_keys_release_on_verification,
    api_keys_revoke_on_password_reset,
    personal_workspace_create,
)


class AccountAdapter(DefaultAccountAdapter):
    @transaction.atomic
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=True)
        personal_workspace_create(user=user)
        return user

    @transaction.atomic
    def confirm_email(self, request: HttpRequest, email_address: EmailAddress) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed:
            api_keys_release_on_verification(user=email_address.user)
        return confirmed

    @transaction.atomic
    def set_password(self, user: User, password: str) -> None:
        # A password is set without a session only by a reset (a change needs a login, and
        # a login a verified address), so on a never-verified account this is the reset.
        # Password reset by code would verify the address first: it is not enabled here.
        api_keys_revoke_on_password_reset(user=user)
        super().set_password(user, password)
