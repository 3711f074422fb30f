"""Schemathesis against the schema, in-process: no 5xx, no answer that breaks the schema.

Bounded (a few examples per operation, derandomized) so that CI runs it on every change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import Plan
from config.wsgi import application
from tests.conftest import make_person

# Requests go straight into the WSGI app and commit as with a real server, so the test is
# transactional: Django closes a request's connection, and would end a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)

# Checkout and the portal call Stripe (or answer 501 when it is not set up): not ours to fuzz.
STRIPE = r"^/api/v1/billing/(checkout|portal)$"
# A 503 that says when to come back is an answer, not a crash: no GPU worker runs here, so
# the OpenAI-compatible endpoints give up at once (OPENAI_WAIT_SECONDS=0) and say so.
COME_BACK_LATER = ("overloaded", "generation_timeout")


def with_peer_address(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Set REMOTE_ADDR, as every real server does (the in-process client does not)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("REMOTE_ADDR", "127.0.0.1")
        return app(environ, start_response)

    return wrapped


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", with_peer_address(application))


def no_server_error(ctx: object, response: Any, case: object) -> None:
    if response.status_code < 500:
        return
    error = response.json().get("error", {})
    assert response.status_code == 503, f"{response.status_code}: {response.text}"
    assert error.get("code") in COME_BACK_LATER, response.text
    assert "retry-after" in {name.lower() for name in response.headers}, response.text


@pytest.fixture
def api_key(settings: object) -> str:
    settings.OPENAI_WAIT_SECONDS = 0  # type: ignore[attr-defined]
    settings.PREFER_WAIT_MAX_SECONDS = 1  # type: ignore[attr-defined]
    # Room for every generated request, so that they reach validation and not the limits;
    # the priority lane, which no shared test worker serves.
    Plan.objects.filter(slug="pro").update(
        daily_images=100_000, requests_per_minute=100_000, max_jobs_in_flight=100_000
    )
    return make_person("schemathesis@example.com", plan="pro").key


@schema.exclude(path_regex=STRIPE).parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case: schemathesis.Case, api_key: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {api_key}"},
        checks=[
            no_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )
