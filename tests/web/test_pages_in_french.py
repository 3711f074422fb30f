"""Every page in French: walked with Accept-Language and with the header's switcher, no page
shows a string of the catalogue in English, and every template of the site is among them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from accounts.models import Invitation, User
from accounts.services import workspace_create
from billing.models import Plan, Subscription
from generation.models import Image, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import Person, free_images_used_today, small_job

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
TEMPLATES = Path(settings.BASE_DIR) / "web" / "templates"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|<[^>]+>")


def catalogue() -> list[tuple[list[str], list[str]]]:
    """(English msgid and msgid_plural, French msgstrs) of every entry of the French .po."""
    entries: list[tuple[list[str], list[str]]] = []
    english: list[str] = []
    french: list[str] = []
    target: list[str] | None = None
    for line in [*LOCALE.read_text(encoding="utf-8").splitlines(), ""]:
        keyword = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?|msgctxt) "', line)
        if keyword:
            if keyword.group(1) == "msgid" and english:
                entries.append((english, french))
                english, french = [], []
            target = {"msgid": english, "msgid_plural": english, "msgctxt": None}.get(
                keyword.group(1), french
            )
            if target is not None:
                target.append("")
            line = line[len(keyword.group(0)) - 1 :]
        if line.startswith('"') and target is not None:
            target[-1] += line[1:-1].encode().decode("unicode_escape").encode("latin-1").decode()
    entries.append((english, french))
    return [(e, f) for e, f in entries if e != [""]]


def untranslatable(plan_names: set[str]) -> set[str]:
    return plan_names | {"Atelier", "Studio", "Photo", "Images", "Invitation", "Pages"}


def english_strings() -> tuple[set[str], set[str]]:
    """Whole strings (a text or attribute equal to one is English) and long fragments (a page
    containing one shows an English sentence) of the catalogue, leaving out those French
    writes the same way."""
    whole: set[str] = set()
    fragments: set[str] = set()
    for english, french in catalogue():
        for text in english:
            if text in french:
                continue
            whole.add(text.strip())
            for piece in PLACEHOLDER.split(text):
                piece = piece.strip(" .,:;()")
                if len(piece) >= 14 and " " in piece and not any(piece in f for f in french):
                    fragments.add(piece)
    return whole, fragments


class Texts(HTMLParser):
    """The text nodes and the people-facing attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("aria-label", "placeholder", "title", "alt") and value:
                self.texts.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def assert_french(path: str, html: str) -> None:
    whole, fragments = english_strings()
    whole -= untranslatable({plan.name for plan in Plan.objects.all()})
    parser = Texts()
    parser.feed(html)
    english = [text for text in parser.texts if text in whole]
    assert not english, f"{path} shows English: {english}"
    page = unescape(" ".join(parser.texts))
    english = sorted(fragment for fragment in fragments if fragment in page)
    assert not english, f"{path} shows English: {english}"
    assert "<html" not in html or '<html lang="fr">' in html, path


class Walk:
    """Pages visited and the templates they rendered."""

    def __init__(self) -> None:
        self.templates: set[str] = set()

    def visit(self, client: Client, path: str, data: dict | None = None, status: int = 200) -> str:
        response = client.post(path, data or {}) if data is not None else client.get(path)
        assert response.status_code == status, (path, response.status_code)
        self.templates |= {t.name for t in response.templates if t.name}
        html = (b"".join(response) if response.streaming else response.content).decode()
        assert_french(path, html)
        return html


def photo_upload() -> io.BytesIO:
    upload = io.BytesIO()
    PILImage.new("RGB", (320, 240), "teal").save(upload, format="JPEG")
    upload.seek(0)
    upload.name = "photo.jpg"
    return upload


def job_with(person: Person, status: str, **fields: object) -> Job:
    response = person.client().post("/api/v1/generations", small_job(), format="json")
    job = Job.objects.get(pk=response.json()["id"])
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    return Job.objects.get(pk=job.pk)


def test_every_page_reads_in_french(alice: Person, bob: Person) -> None:
    walk = Walk()
    anonymous = Client(headers={"accept-language": "fr-FR,fr;q=0.9,en;q=0.5"})
    for path in ("/", "/accounts/login/", "/accounts/signup/"):
        walk.visit(anonymous, path)

    # Alice picks French in the header's switcher (her browser asks for English).
    web = Client(headers={"accept-language": "en"})
    web.force_login(alice.user)
    switched = web.post("/language/", {"language": "fr", "next": "/studio/"})
    assert switched.status_code == 302 and switched["Location"] == "/studio/"
    assert web.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    assert User.objects.get(pk=alice.user.pk).language == "fr"

    # On Pro: jobs of every state on the studio page, and a subscription on the billing page.
    Subscription.objects.create(workspace=alice.workspace, plan=Plan.objects.get(slug="pro"))
    queued = job_with(alice, Job.Status.QUEUED)
    done = job_with(alice, Job.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now())
    Image.objects.create(
        job=done, workspace=alice.workspace, index=0, file="x.png", width=64, height=64, seed=7
    )
    job_with(
        alice,
        Job.Status.FAILED,
        error_code="deadline_exceeded",
        error_message="The job did not finish in time; its images were given back.",
        finished_at=timezone.now(),
    )
    job_with(alice, Job.Status.CANCELLED, finished_at=timezone.now())

    html = walk.visit(web, "/studio/")
    assert "La tâche ne s&#x27;est pas terminée à temps. Vos images vous ont été rendues." in html
    assert "did not finish in time" not in html  # the worker's English record
    walk.visit(web, f"/jobs/{queued.pk}/")
    walk.visit(web, f"/jobs/{done.pk}/")
    stream = walk.visit(web, f"/jobs/{done.pk}/events/")  # the live card's stream (web/live.py)
    assert "event: card" in stream and "Télécharger" in stream and "event: done" in stream
    html = walk.visit(web, "/studio/", {"prompt": "a square", "width": "60"}, status=400)
    assert "Doit être un multiple de 8." in html
    html = walk.visit(
        web, "/studio/", {"prompt": "un portrait à la manière de Loish", "width": "64"}, 422
    )
    assert "Cette demande a été refusée" in html
    walk.visit(web, "/edit/")
    walk.visit(web, "/gallery/")
    walk.visit(anonymous, "/verify/")
    html = walk.visit(web, "/verify/", {"image": photo_upload()})
    assert "Rien n'indique que cette image a été créée ici." in html
    html = walk.visit(web, "/verify/", {}, status=400)
    assert "Choisissez une image à vérifier." in html
    walk.visit(web, "/billing/")
    walk.visit(web, "/keys/")
    html = walk.visit(web, "/keys/", {"name": "mon script"}, status=201)
    assert "copiez-la maintenant" in html
    walk.visit(web, "/team/")

    # Webhooks: a refused URL, an endpoint with its secret, deliveries and their attempts.
    html = walk.visit(web, "/webhooks/")
    assert "Aucun point de terminaison pour l'instant." in html
    html = walk.visit(web, "/webhooks/", {"url": "https://10.0.0.7/hook"}, status=400)
    assert "10.0.0.7 n&#x27;est pas une adresse publique." in html
    html = walk.visit(
        web,
        "/webhooks/",
        {"url": "https://hooks.example.com/atelier", "events": ["start"], "description": "CI"},
        status=201,
    )
    assert "copiez-le maintenant" in html
    endpoint = WebhookEndpoint.objects.get(url="https://hooks.example.com/atelier")
    since = timezone.now() - timedelta(hours=3)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=since)
    WebhookEndpoint.objects.create(
        workspace=alice.workspace, url="https://old.example.com/hook", secret="whsec_x",
        events=["completed", "progress"], enabled=False, failing_since=since,
        disabled_reason="Disabled after failing since … UTC: HTTP 503: down",
    )  # fmt: skip
    failed = WebhookDelivery.objects.create(
        workspace=alice.workspace, job=done, endpoint=endpoint, url=endpoint.url,
        event="completed", status="failed", attempts=2, retry_until=timezone.now(),
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=failed, number=1, started_at=since, latency_ms=12, response_status=500,
        error="HTTP 500: oops",
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=failed, number=2, started_at=since, latency_ms=3000,
        error="TimeoutError: timed out",
    )  # fmt: skip
    pending = WebhookDelivery.objects.create(
        workspace=alice.workspace, job=done, endpoint=endpoint, url=endpoint.url,
        event="start", retry_until=timezone.now(),
    )  # fmt: skip
    html = walk.visit(web, "/webhooks/")
    assert "Début, Fin" in html and "Progression, Fin" in html
    assert "activé, en échec depuis le" in html
    assert "désactivé après des échecs depuis le" in html
    assert "n° 1 : HTTP 500 en 12 ms" in html and "n° 2 : pas de réponse en 3000 ms" in html
    assert "Échoué" in html and "En cours" in html
    for post, flash in [
        (f"/webhooks/deliveries/{failed.pk}/redeliver/", "L&#x27;événement « fin » est renvoyé."),
        (f"/webhooks/deliveries/{pending.pk}/redeliver/", "Cet envoi est encore en cours."),
        (f"/webhooks/{endpoint.pk}/toggle/", "https://hooks.example.com/atelier désactivé."),
        (f"/webhooks/{endpoint.pk}/delete/", "https://hooks.example.com/atelier retiré."),
    ]:
        assert web.post(post).status_code == 302, post
        assert flash in walk.visit(web, "/webhooks/"), post

    cancelled = web.post(f"/jobs/{queued.pk}/cancel/")
    assert cancelled.status_code == 302
    html = walk.visit(web, "/studio/")
    assert "Tâche annulée" in html
    created = web.post("/workspaces/new/", {"name": "Atelier Dupont"})
    assert created.status_code == 302
    html = walk.visit(web, "/billing/")
    assert "Atelier Dupont a été créé" in html
    walk.visit(web, "/team/")
    team = alice.user.memberships.get(workspace__name="Atelier Dupont").workspace
    invitation = Invitation.objects.create(
        workspace=team, email=bob.user.email, invited_by=alice.user, token="t" * 32
    )

    # Bob's browser asks for French; the invitation page, then the quota refusal.
    bob_web = Client(headers={"accept-language": "fr"})
    bob_web.force_login(bob.user)
    walk.visit(bob_web, f"/invitations/{invitation.token}/")
    free_images_used_today(bob, 3)
    html = walk.visit(bob_web, "/studio/", {"prompt": "a square", "width": "64"}, status=429)
    assert "Vous avez utilisé les 3 images de votre quota." in html
    assert "Votre quota sera renouvelé à" in html

    site = {str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")}
    assert site - walk.templates == set()


def test_a_signed_in_persons_language_comes_back_at_their_next_login(alice: Person) -> None:
    User.objects.filter(pk=alice.user.pk).update(language="fr")
    browser = Client(headers={"accept-language": "en"})
    response = browser.post(
        "/accounts/login/", {"login": alice.user.email, "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert browser.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    assert '<html lang="fr">' in browser.get("/studio/").content.decode()


def test_the_switcher_refuses_a_language_we_do_not_have_and_a_foreign_next(
    alice: Person,
) -> None:
    web = Client()
    web.force_login(alice.user)
    response = web.post("/language/", {"language": "de", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert User.objects.get(pk=alice.user.pk).language == ""


def test_an_invitation_is_mailed_in_the_inviters_language(
    alice: Person, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    team = workspace_create(owner=alice.user, name="Atelier Dupont")
    Subscription.objects.create(workspace=team, plan=Plan.objects.get(slug="team"))
    web = Client(headers={"accept-language": "fr"})
    web.force_login(alice.user)
    web.post("/workspaces/switch/", {"workspace": str(team.pk)})
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post("/team/invite/", {"email": "chloe@example.com"})
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.subject == "alice@example.com vous invite à rejoindre Atelier Dupont sur Atelier"
    assert message.body.startswith("Rejoignez Atelier Dupont sur Atelier :")
    assert "Invitation envoyée à chloe@example.com." in web.get("/team/").content.decode()
