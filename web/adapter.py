"""django-allauth's hooks: a person who signs up on the web gets a personal workspace, as
one who signs up through the API does; following the link to an address, or resetting a
password, settles the keys an API sign-up made."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from accounts.keys import api_keys_release_on_verification, api_keys_revoke_on_password_reset
from accounts.models import User
from accounts.services import personal_workspace_create
from web.language import language_cookie_set


class AccountAdapter(DefaultAccountAdapter):
    @transaction.atomic
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=True)
        personal_workspace_create(user=user)
        return user

    def post_login(self, request: HttpRequest, user: User, **kwargs: Any) -> HttpResponse:
        # The language a person chose before, on any browser, from their first page on.
        if user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        response = super().post_login(request, user, **kwargs)
        if user.language:
            language_cookie_set(response, user.language)
        return response

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
