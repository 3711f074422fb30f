"""Webhooks: a job's changes delivered to the URLs that asked for them, signed and retried.

Two sources of URLs: a job's own `webhook` (with its `webhook_events_filter`), signed with the
workspace's signing secret, and the endpoints a workspace registered, each with its own
secret. The notification path (generation/notify.py) hands every job change here after its
commit; `webhooks_dispatch` records a delivery per URL that wants it and queues a Celery task
on the `webhooks` queue (never a GPU lane's). Progress is sent at most once every 500 ms per job.

A delivery follows the Standard Webhooks specification: `webhook-id` (the same on every
attempt), `webhook-timestamp` and `webhook-signature` (HMAC-SHA256, signed by the
`standardwebhooks` package). Its body is `{"type": "job.<event>", "timestamp", "data": job}`
with the job as the API shows it, and image URLs that work without a key for a limited time.
Network errors, 429 and 5xx are retried with exponential backoff and jitter until
WEBHOOK_RETRY_WINDOW runs out; every attempt is recorded.

Server-side request forgery: a delivery resolves the host, refuses it if any address is not
public (loopback, private, link-local, metadata, ...) unless WEBHOOK_ALLOWED_NETWORKS holds
it, then connects to that very address (no second lookup to rebind), follows no redirects,
and reads at most WEBHOOK_RESPONSE_MAX_BYTES of the answer.

Over 300 lines: dispatch, signing, the guarded HTTP client and the retry policy of one kind of
delivery, kept together so that the rules they share are read in one place.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import random
import secrets
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from standardwebhooks import Webhook

from accounts.models import Membership, Workspace
from config.errors import DomainError
from generation.models import (
    Image,
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSigningSecret,
)
from generation.queue import redis_client

logger = logging.getLogger(__name__)

# notify's event names -> webhook events (a requeue is not one)
EVENTS = {"start": WebhookEvent.START, "progress": WebhookEvent.PROGRESS}
PROGRESS_INTERVAL_MS = 500
PROGRESS_KEY = "atelier:webhook-progress:{}"
IMAGE_URL_SALT = "atelier.openai.image-url"  # the OpenAI API's signed URLs serve them


class WebhookUrlRefused(DomainError):
    code = "invalid_webhook"

    def __init__(self, reason: str, *, param: str = "webhook") -> None:
        super().__init__(
            _("This webhook URL cannot be used: %(reason)s") % {"reason": reason}, param=param
        )


# Addresses


def address_allowed(address: str) -> bool:
    """Public unicast addresses, and those of WEBHOOK_ALLOWED_NETWORKS."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network in settings.WEBHOOK_ALLOWED_NETWORKS:
        if ip in ipaddress.ip_network(network, strict=False):
            return True
    return ip.is_global and not ip.is_multicast


def webhook_url_check(url: str, *, param: str = "webhook") -> str:
    """Refuse, before any lookup, what can never be delivered: another scheme, credentials,
    a host that is a non-public address or names this machine."""
    parts = urlsplit(url)
    schemes = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in schemes:
        if settings.WEBHOOK_ALLOW_HTTP:
            raise WebhookUrlRefused(_("it must be an https or http URL."), param=param)
        raise WebhookUrlRefused(_("it must be an https URL."), param=param)
    if not parts.hostname or parts.username or parts.password:
        raise WebhookUrlRefused(_("it needs a host and no credentials."), param=param)
    host = parts.hostname.rstrip(".").lower()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(host):
        raise WebhookUrlRefused(
            _("%(host)s is not a public address.") % {"host": host}, param=param
        )
    local_name = host == "localhost" or host.endswith((".localhost", ".internal"))
    if literal is None and local_name and not address_allowed("127.0.0.1"):
        raise WebhookUrlRefused(_("%(host)s is not a public host.") % {"host": host}, param=param)
    return url


def _resolve(host: str, port: int) -> str:
    """The address to connect to: every address the host resolves to must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryRefused(f"{host} does not resolve ({exc})") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DeliveryRefused(f"{host} resolves to no address")
    refused = [a for a in addresses if not address_allowed(a)]
    if refused:
        raise DeliveryRefused(f"{host} resolves to {refused[0]}, which is not a public address")
    return addresses[0]


class DeliveryRefused(Exception):
    """Not sent, and never will be as it is: not retried."""


# Secrets and signing


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secret_for(workspace: Workspace) -> str:
    """The secret that signs the workspace's per-job webhooks (made on first use)."""
    secret, _ = WebhookSigningSecret.objects.get_or_create(
        workspace=workspace, defaults={"secret": new_secret()}
    )
    return secret.secret


def signed_headers(*, secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body),
    }


# Dispatch (after a job change commits)


@dataclass(frozen=True)
class Target:
    url: str
    endpoint: WebhookEndpoint | None


def _wants(events: list[str], event: str) -> bool:
    return event == WebhookEvent.COMPLETED or event in events


def _progress_due(job_id: str) -> bool:
    """At most one progress delivery per job every PROGRESS_INTERVAL_MS."""
    try:
        key = PROGRESS_KEY.format(job_id)
        return bool(redis_client().set(key, 1, nx=True, px=PROGRESS_INTERVAL_MS))
    except redis.RedisError:
        return False


def webhooks_dispatch(events: list[dict[str, Any]]) -> int:
    """Record and queue a delivery for each URL that wants each of these job changes.

    Two queries whatever the number of events; nothing when nobody listens."""
    wanted = {e["id"]: EVENTS.get(e["event"], e["event"]) for e in events}
    wanted = {job_id: event for job_id, event in wanted.items() if event in WebhookEvent.values}
    if not wanted:
        return 0
    jobs = list(
        Job.objects.filter(pk__in=list(wanted)).values_list(
            "pk", "workspace_id", "webhook", "webhook_events_filter"
        )
    )
    endpoints: dict[Any, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(
        workspace_id__in={row[1] for row in jobs}, enabled=True
    ):
        endpoints.setdefault(endpoint.workspace_id, []).append(endpoint)
    deliveries = []
    retry_until = timezone.now() + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW)
    for job_id, workspace_id, url, events_filter in jobs:
        event = wanted[str(job_id)]
        targets = [Target(url, None)] if url and _wants(events_filter or [], event) else []
        targets += [
            Target(endpoint.url, endpoint)
            for endpoint in endpoints.get(workspace_id, [])
            if _wants(endpoint.events, event)
        ]
        if not targets or (event == WebhookEvent.PROGRESS and not _progress_due(str(job_id))):
            continue
        deliveries += [
            WebhookDelivery(
                workspace_id=workspace_id,
                job_id=job_id,
                endpoint=target.endpoint,
                url=target.url,
                event=event,
                retry_until=retry_until,
            )
            for target in targets
        ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        transaction.on_commit(lambda: _queue([d.pk for d in deliveries]))
    return len(deliveries)


def _queue(delivery_ids: list[Any], countdown: float = 0) -> None:
    from generation.tasks import deliver_webhook  # tasks import the services

    for delivery_id in delivery_ids:
        deliver_webhook.apply_async((str(delivery_id),), countdown=countdown)


# The body


def signed_image_url(image: Image) -> str:
    """A URL of the PNG that needs no key until OPENAI_IMAGE_URL_TTL runs out."""
    token = signing.TimestampSigner(salt=IMAGE_URL_SALT).sign(str(image.id)).split(":", 1)[1]
    return f"{settings.PUBLIC_URL.rstrip('/')}/v1/images/content/{image.id}?token={token}"


def job_payload(delivery: WebhookDelivery) -> dict[str, Any]:
    from generation.api import JobOutput  # the API's view of a job (it imports this app)

    job = None
    if delivery.job_id is not None:
        job = Job.objects.prefetch_related("images").filter(pk=delivery.job_id).first()
    data: dict[str, Any] = {"id": str(delivery.job_id)}
    if job is not None:
        data = dict(JobOutput(job, context={"request": None, "image_url": signed_image_url}).data)
    return {
        "type": f"job.{delivery.event}",
        "timestamp": timezone.now().isoformat(),
        "data": data,
    }


# Sending


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str
    latency_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.error.startswith("refused"):
            return False
        return self.status is None or self.status == 429 or self.status >= 500


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to `address`, verified against the URL's host name (SNI and certificate)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def webhook_post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST `body` to `url` under the SSRF rules; never raises."""
    started = time.monotonic()

    def outcome(status: int | None, error: str) -> Outcome:
        return Outcome(status, error[:500], round((time.monotonic() - started) * 1000))

    try:
        webhook_url_check(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve(host, port)
    except (WebhookUrlRefused, DeliveryRefused, ValueError) as exc:
        return outcome(None, f"refused: {exc}")
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        return outcome(None, "refused: the body is larger than WEBHOOK_MAX_BODY_BYTES")
    kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = kind(host, port, address, settings.WEBHOOK_TIMEOUT)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": "Atelier-Webhooks/1",
            },
        )
        response = connection.getresponse()
        answer = response.read(settings.WEBHOOK_RESPONSE_MAX_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        return outcome(None, f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    if 300 <= response.status < 400:
        location = response.getheader("Location", "")
        return outcome(response.status, f"refused: redirects are not followed ({location})")
    text = answer.decode("utf-8", "replace")
    error = "" if 200 <= response.status < 300 else f"HTTP {response.status}: {text}"
    return outcome(response.status, error)


def retry_delay(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: doubling from the base, with up to half as much
    again at random, so that retries of many deliveries spread out and still grow."""
    delay = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return min(delay * (1 + random.random() / 2), settings.WEBHOOK_RETRY_MAX_DELAY)


def webhook_attempt(*, delivery_id: Any) -> float | None:
    """Make the next attempt of a pending delivery and record it. Returns the seconds until
    the next attempt, or None when the delivery is settled (or was not pending)."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return None
    if delivery.payload is None:
        delivery.payload = job_payload(delivery)
        delivery.save(update_fields=["payload"])
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.enabled:
        _settle(delivery, WebhookDelivery.Status.FAILED)
        return None
    secret = endpoint.secret if endpoint else signing_secret_for(delivery.workspace)
    body = json.dumps(delivery.payload, separators=(",", ":"))
    started_at = timezone.now()
    headers = signed_headers(
        secret=secret, message_id=delivery.message_id, body=body, at=started_at
    )
    result = webhook_post(delivery.url, body.encode(), headers)
    number = delivery.attempts + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started_at,
        latency_ms=result.latency_ms,
        response_status=result.status,
        error=result.error,
        succeeded=result.succeeded,
    )
    delivery.attempts = number
    if result.succeeded:
        _settle(delivery, WebhookDelivery.Status.SUCCEEDED)
        if endpoint is not None and endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        return None
    if endpoint is not None:
        endpoint_failure(endpoint=endpoint, error=result.error)
    delay = retry_delay(number)
    if result.retryable and timezone.now() + timedelta(seconds=delay) <= delivery.retry_until:
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        return delay
    _settle(delivery, WebhookDelivery.Status.FAILED)
    return None


def _settle(delivery: WebhookDelivery, status: str) -> None:
    delivery.status = status
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at"])


def endpoint_failure(*, endpoint: WebhookEndpoint, error: str) -> None:
    """Note a failed attempt; an endpoint failing for WEBHOOK_DISABLE_AFTER is disabled and
    its workspace's owners and admins are mailed."""
    now = timezone.now()
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
            failing_since=now
        )
        endpoint.failing_since = now
    if now - endpoint.failing_since < timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER):
        return
    # The record (API, admin) stays English, as other stored errors do; the page and the mail
    # say it in their reader's language.
    reason = f"Disabled after failing since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC: {error}"
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason[:300]
    )
    if disabled:
        endpoint_disabled_mail(endpoint=endpoint, since=endpoint.failing_since, error=error)


def endpoint_disabled_mail(*, endpoint: WebhookEndpoint, since: datetime, error: str) -> None:
    """Tell the workspace's owners and admins, each in the language of their profile."""
    owners = Membership.objects.filter(
        workspace_id=endpoint.workspace_id,
        role__in=(Membership.Role.OWNER, Membership.Role.ADMIN),
    ).values_list("user__email", "user__language")
    by_language: dict[str, list[str]] = {}
    for email, language in owners:
        by_language.setdefault(language or settings.LANGUAGE_CODE, []).append(email)
    for language, emails in sorted(by_language.items()):
        with translation.override(language):
            names = {
                "url": endpoint.url,
                "since": formats.date_format(since, "DATETIME_FORMAT"),
                "error": error,
            }
            subject = _("Atelier disabled a webhook endpoint")
            body = (
                _(
                    "Deliveries to %(url)s kept failing since %(since)s UTC, so the endpoint "
                    "was disabled.\n\nLast error: %(error)s\n\n"
                    "Fix the receiver, then enable the endpoint again on the Webhooks page."
                )
                % names
            )
        send_mail(
            subject=subject,
            message=body,
            from_email=None,
            recipient_list=emails,
            fail_silently=True,
        )


def webhook_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again (same `webhook-id` and body), with a fresh retry window."""
    if delivery.status == WebhookDelivery.Status.PENDING:
        raise DomainError(_("This delivery is still being attempted."), code="delivery_pending")
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.retry_until = timezone.now() + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW)
    delivery.save(update_fields=["status", "retry_until"])
    transaction.on_commit(lambda: _queue([delivery.pk]))
    return delivery


# Endpoints


def webhook_endpoint_create(
    *, workspace: Workspace, url: str, events: Sequence[str] = (), description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint; its secret is shown to the caller once."""
    webhook_url_check(url, param="url")
    return WebhookEndpoint.objects.create(
        workspace=workspace,
        url=url,
        events=sorted(set(events) | {WebhookEvent.COMPLETED}),
        description=description,
        secret=new_secret(),
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        endpoint.url = webhook_url_check(url, param="url")
    if events is not None:
        endpoint.events = sorted(set(events) | {WebhookEvent.COMPLETED})
    if description is not None:
        endpoint.description = description
    if enabled is not None:
        endpoint.enabled = enabled
        if enabled:  # a fresh start
            endpoint.failing_since = None
            endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint
