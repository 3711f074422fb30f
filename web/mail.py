from __future__ import annotations

from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import Invitation


def invitation_send(request: HttpRequest, invitation: Invitation) -> None:
    """Email the invitation's link, once the invitation is committed."""
    url = request.build_absolute_uri(reverse("web:invitation", args=[invitation.token]))
    inviter = request.user.name or request.user.email
    transaction.on_commit(
        lambda: send_mail(
            subject=f"{inviter} invited you to {invitation.workspace.name} on Atelier",
            message=f"Join {invitation.workspace.name} on Atelier:\n\n{url}\n\n"
            "Sign in (or sign up) with this email address, then accept the invitation.",
            from_email=None,
            recipient_list=[invitation.email],
        )
    )
