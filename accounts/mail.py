"""The mails of an API sign-up and login: django-allauth's own, as the web sign-up sends them
(same templates, same link, same cooldown per address)."""

from __future__ import annotations

from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from allauth.core import ratelimit
from django.http import HttpRequest


def _cooled_down(request: HttpRequest, email: str) -> bool:
    # allauth's cooldown for verification mails ("confirm_email", per address): one of ours
    # counts against it as one from the web sign-up does, so nobody mails an inbox in a loop.
    return ratelimit.consume(request, action="confirm_email", key=email.lower())


def verification_send(request: HttpRequest, address: EmailAddress, *, signup: bool) -> bool:
    """Mail the link that verifies `address`. False when one went out within the cooldown
    (its link still works)."""
    if not _cooled_down(request, address.email):
        return False
    address.send_confirmation(request, signup=signup)
    return True


def account_exists_send(request: HttpRequest, email: str) -> bool:
    """Tell the owner of `email` that someone tried to sign up with it, with links to log in
    or reset the password: what the web sign-up sends, instead of saying so on the page."""
    if not _cooled_down(request, email):
        return False
    get_adapter(request).send_account_already_exists_mail(email)
    return True
