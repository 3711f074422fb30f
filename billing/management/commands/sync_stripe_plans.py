from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.stripe_client import BillingNotConfigured, StripeRequestFailed
from billing.stripe_plans import stripe_plans_sync


class Command(BaseCommand):
    help = (
        "Create or update a Stripe product and monthly price for each paid plan and store "
        "their ids on the plans. Safe to run again: it changes nothing that is up to date."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            lines = stripe_plans_sync()
        except (BillingNotConfigured, StripeRequestFailed) as error:
            raise CommandError(error.message) from error
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"{len(lines)} paid plan(s) in sync with Stripe."))
