from __future__ import annotations

from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import Invitation


def invitation_send(request: HttpRequest, invitation: Invitation) -> None:
    """Email the invitation's link, once the invitation is committed."""
    url = request.build_absolute_uri(reverse("web:invitation", args=[invitation.token]))
    inviter = request.user.name or request.user.email
    names = {"inviter": inviter, "workspace": invitation.workspace.name, "url": url}
    # Written now, in the inviter's language (on_commit runs after the request's is gone).
    subject = _("%(inviter)s invited you to %(workspace)s on Atelier") % names
    body = (
        _(
            "Join %(workspace)s on Atelier:\n\n%(url)s\n\n"
            "Sign in (or sign up) with this email address, then accept the invitation."
        )
        % names
    )
    transaction.on_commit(
        lambda: send_mail(
            subject=subject,
            message=body,
            from_email=None,
            recipient_list=[invitation.email],
        )
    )
