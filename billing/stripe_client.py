"""The one way the platform talks to Stripe: a StripeClient built from the settings, and the
errors a caller shows when billing is not set up or Stripe refuses a request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from django.conf import settings
from django.utils.translation import gettext as _

from config.errors import DomainError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tests at the HTTP boundary put a recording stripe.HTTPClient here; None is the library's.
HTTP_CLIENT: stripe.HTTPClient | None = None


class BillingNotConfigured(DomainError):
    code = "billing_not_configured"

    def __init__(self) -> None:
        super().__init__(
            _(
                "Billing is not set up on this server: no Stripe key is configured. Everything "
                "else works, and this workspace keeps its current plan."
            )
        )


# Stripe was out of reach, too busy or failed on its side: the same request may succeed later.
TRANSIENT_STRIPE_ERRORS = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)
STRIPE_RETRY_AFTER = 60  # seconds


def stripe_transient(error: stripe.StripeError) -> bool:
    return isinstance(error, TRANSIENT_STRIPE_ERRORS) or (error.http_status or 0) >= 500


def stripe_not_found(error: BaseException | None) -> bool:
    """Stripe has no such object (its code is resource_missing; every 404 means the same)."""
    return isinstance(error, stripe.InvalidRequestError) and (
        error.code == "resource_missing" or error.http_status == 404
    )


class StripeRequestFailed(DomainError):
    """Stripe refused or did not answer; nothing was changed on our side. When the failure
    is Stripe's (out of reach, busy, a 5xx) the error says when to try again."""

    code = "stripe_error"

    def __init__(self, *, action: str, error: stripe.StripeError) -> None:
        reason = error.user_message or _("it did not answer")
        retry: dict[str, Any] = (
            {"retry_after": STRIPE_RETRY_AFTER} if stripe_transient(error) else {}
        )
        super().__init__(
            _(
                "Stripe could not %(action)s: %(reason)s. Nothing was changed or charged; "
                "please try again in a moment."
            )
            # The actions people meet are marked with gettext_noop where they are named.
            % {"action": _(action), "reason": reason.rstrip(".")},
            **retry,
        )


def billing_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    """A client for the configured account; raises BillingNotConfigured without a key."""
    if not billing_enabled():
        raise BillingNotConfigured()
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        # Writes carry idempotency keys, so the library's retries cannot do anything twice.
        max_network_retries=2,
        http_client=HTTP_CLIENT,
    )


def stripe_call(action: str, call: Callable[[], T]) -> T:
    """Run one Stripe request; a Stripe error becomes StripeRequestFailed (a 502)."""
    try:
        return call()
    except stripe.StripeError as error:
        logger.warning("Stripe could not %s: %r", action, error)
        raise StripeRequestFailed(action=action, error=error) from error


def as_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain JSON data (what a webhook payload holds)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
