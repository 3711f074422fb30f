"""Webhooks speak the reader's language: a refused URL in the caller's (Accept-Language, same
code and param), a redelivery refusal too, and the mail about a disabled endpoint in each
owner's and admin's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import Membership, User
from generation.models import WebhookDelivery, WebhookEndpoint
from generation.webhooks import endpoint_failure
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db

FRENCH = "fr-FR,fr;q=0.9,en;q=0.5"
MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
]  # fmt: skip


def error(response: object) -> dict:
    return {"status": response.status_code, **response.json()["error"]}  # type: ignore[attr-defined]


def test_a_private_endpoint_url_is_refused_in_the_callers_language(alice: Person) -> None:
    body = {"url": "https://10.0.0.7/hook"}
    english = error(alice.client().post("/api/v1/webhooks", body, format="json"))
    french = error(
        alice.client().post(
            "/api/v1/webhooks", body, format="json", headers={"accept-language": FRENCH}
        )
    )
    for refusal in (english, french):
        assert (refusal["status"], refusal["code"], refusal["param"]) == (
            400,
            "invalid_webhook",
            "url",
        )
    assert (
        english["message"] == "This webhook URL cannot be used: 10.0.0.7 is not a public address."
    )
    assert french["message"] == (
        "Cette URL de webhook ne peut pas être utilisée : 10.0.0.7 n'est pas une adresse publique."
    )
    assert not WebhookEndpoint.objects.exists()


def test_a_jobs_webhook_over_http_is_refused_in_french_when_asked_in_french(alice: Person) -> None:
    french = error(
        alice.client().post(
            "/api/v1/generations",
            small_job(webhook="http://example.com/hook"),
            format="json",
            headers={"accept-language": FRENCH},
        )
    )
    assert (french["status"], french["param"]) == (400, "webhook")
    assert (
        "Cette URL de webhook ne peut pas être utilisée : elle doit être une URL https."
        in (french["message"])
    )


def test_redelivering_a_pending_delivery_is_refused_in_french(alice: Person) -> None:
    delivery = WebhookDelivery.objects.create(
        workspace=alice.workspace, url="https://hooks.example.com/a", event="completed",
        retry_until=timezone.now(),
    )  # fmt: skip
    path = f"/api/v1/webhook-deliveries/{delivery.id}/redeliver"
    english = error(alice.client().post(path))
    french = error(alice.client().post(path, headers={"accept-language": FRENCH}))
    for refusal in (english, french):
        assert (refusal["status"], refusal["code"]) == (409, "delivery_pending")
    assert english["message"] == "This delivery is still being attempted."
    assert french["message"] == "Cet envoi est encore en cours."


@override_settings(WEBHOOK_DISABLE_AFTER=60)
def test_the_disabled_endpoint_mail_is_written_in_each_readers_language(alice: Person) -> None:
    User.objects.filter(pk=alice.user.pk).update(language="fr")
    erin = make_person("erin@example.com")
    Membership.objects.create(user=erin.user, workspace=alice.workspace, role="admin")
    dora = make_person("dora@example.com")
    Membership.objects.create(user=dora.user, workspace=alice.workspace, role="member")
    since = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    endpoint = WebhookEndpoint.objects.create(
        workspace=alice.workspace, url="https://hooks.example.com/a", secret="whsec_x",
        events=["completed"], failing_since=since,
    )  # fmt: skip

    endpoint_failure(endpoint=endpoint, error="HTTP 503: down")

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "503" in endpoint.disabled_reason  # the record: English
    by_reader = {tuple(message.to): message for message in mail.outbox}
    assert set(by_reader) == {("alice@example.com",), ("erin@example.com",)}  # not dora
    french, english = by_reader[("alice@example.com",)], by_reader[("erin@example.com",)]
    assert french.subject == "Atelier a désactivé un point de terminaison de webhook"
    month = MONTHS[since.month - 1]
    assert french.body.startswith(
        "Les envois vers https://hooks.example.com/a échouent depuis le "
        f"{since.day} {month} {since.year} {since:%H:%M} UTC"
    )
    assert "Dernière erreur : HTTP 503: down" in french.body
    assert "réactivez le point de terminaison sur la page Webhooks." in french.body
    assert english.subject == "Atelier disabled a webhook endpoint"
    assert english.body.startswith(
        f"Deliveries to https://hooks.example.com/a kept failing since {since:%Y-%m-%d %H:%M} UTC"
    )
    assert "Last error: HTTP 503: down" in english.body


def test_operators_redeliver_from_the_admin_in_french(alice: Person) -> None:
    failed, pending = (
        WebhookDelivery.objects.create(
            workspace=alice.workspace,
            url="https://hooks.example.com/a",
            event="completed",
            status=status,
            retry_until=timezone.now(),
        )
        for status in ("failed", "pending")
    )
    ops = Client(headers={"accept-language": FRENCH})
    ops.force_login(User.objects.create_superuser("ops@example.com", "a long passphrase"))
    listing = ops.get("/admin/generation/webhookdelivery/").content.decode()
    assert "Renvoyer les envois sélectionnés (même webhook-id et même corps)" in listing
    assert "Envois de webhook" in listing and "Échoué" in listing
    answer = ops.post(
        "/admin/generation/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(failed.pk), str(pending.pk)]},
        follow=True,
    )
    told = [str(message) for message in answer.context["messages"]]
    assert sorted(told) == sorted(
        ["1 envoi relancé.", f"{pending.pk}: Cet envoi est encore en cours."]
    )  # sorted alike: a uuid that starts with "0" sorts before "1 envoi"
    failed.refresh_from_db()
    assert failed.status == "pending"
