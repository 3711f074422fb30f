"""django-allauth's hooks: a person who signs up on the web gets a personal workspace, as
one who signs up through the API does."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from accounts.models import User
from accounts.services import personal_workspace_create


class AccountAdapter(DefaultAccountAdapter):
    @transaction.atomic
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=True)
        personal_workspace_create(user=user)
        return user
