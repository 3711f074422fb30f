"""Atelier in French in a real browser: the header's switcher, sign-up, the studio and a
refused prompt, with a screenshot at each step (test-output/screenshots/fr-*.png)."""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.core import mail
from playwright.sync_api import Browser, expect

from accounts.models import User
from generation.models import Job, PolicyRefusal
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL = "zoe@example.com"
PASSWORD = "une phrase de passe longue et peu commune"
PROMPT = "un portrait à la manière de Greg Rutkowski, au crépuscule"


@pytest.fixture
def shipped_rules() -> None:
    """The rules the data migrations ship, in both languages (transactional tests flush them)."""
    for name, function in (
        ("0005_starting_policy_rules", "create_rules"),
        ("0010_starting_policy_rules_in_french", "create_translations"),
    ):
        migration = importlib.import_module(f"generation.migrations.{name}")
        getattr(migration, function)(django_apps, None)


def test_a_french_speaker_signs_up_and_is_refused_in_french(
    live_server: object, browser: Browser, shipped_rules: None
) -> None:
    base = live_server.url  # type: ignore[attr-defined]
    # A browser set to English: the person picks French in the header.
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{base}/")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Type a prompt, watch the image arrive."
        )
        page.get_by_label("Language").select_option("fr")
        page.get_by_role("button", name="Change language").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Écrivez un prompt, regardez l'image apparaître."
        )
        assert page.locator("html").get_attribute("lang") == "fr"
        screenshot(page, "fr-01-home")

        page.get_by_role("link", name="Inscription gratuite").click()
        page.fill('input[name="email"]', EMAIL)
        page.fill('input[name="password1"]', PASSWORD)
        page.fill('input[name="password2"]', PASSWORD)
        screenshot(page, "fr-02-sign-up")
        page.locator('form button[type="submit"]').last.click()
        expect(page.get_by_role("heading", name="Vérifiez votre adresse e-mail")).to_be_visible()
        [message] = mail.outbox
        assert message.to == [EMAIL]
        assert "Confirmez votre adresse e-mail" in message.subject
        link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
        page.goto(link)
        screenshot(page, "fr-03-confirm-email")
        page.locator('main form button[type="submit"]').click()
        page.wait_for_url(f"{base}/studio/")

        meter = page.get_by_test_id("quota-text")
        expect(meter).to_contain_text("3 sur 3 images restantes aujourd'hui, renouvellement dans")
        expect(page.get_by_role("link", name="Galerie")).to_be_visible()
        screenshot(page, "fr-04-studio")

        page.fill("#id_prompt", PROMPT)
        page.fill("#id_width", "64")
        page.fill("#id_height", "64")
        with page.expect_navigation():
            page.get_by_role("button", name="Générer").click()
        refusal = page.get_by_role("alert")
        expect(refusal).to_have_attribute("data-code", "policy_refused")
        expect(refusal).to_contain_text(
            "Cette demande a été refusée : Atelier n'imite pas le style d'un artiste vivant"
        )
        expect(refusal).to_contain_text("Décrivez plutôt ce qui vous plaît, par exemple :")
        expect(refusal).to_contain_text("Essayez plutôt :")
        screenshot(page, "fr-05-refused")

        refusal.get_by_role("button", name="Utiliser ce prompt").click()
        expect(page.locator("#id_prompt")).to_have_value(
            "un portrait avec un éclairage fantastique spectaculaire, une touche picturale et "
            "un souffle épique, au crépuscule"
        )
        expect(meter).to_contain_text("3 sur 3 images restantes")  # a refusal costs nothing
        screenshot(page, "fr-06-suggestion-used")
    finally:
        context.close()

    assert not Job.objects.exists()
    assert PolicyRefusal.objects.get().prompt == PROMPT
    assert User.objects.get(email=EMAIL).language == ""  # chosen before signing in: a cookie
