"""A busy database is answered as overload: 503 `overloaded` with Retry-After, never a 500."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection, transaction
from django.test import RequestFactory
from psycopg_pool import PoolTimeout

from config.overload import database_unavailable
from config.unavailable import ServiceUnavailableMiddleware
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def cancelled_statement() -> OperationalError:
    """The error PostgreSQL gives a statement that outlived the web's statement_timeout."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(1)")
    except OperationalError as exc:
        return exc
    raise AssertionError("the statement was not cancelled")


def pool_timeout() -> OperationalError:
    try:
        try:
            raise PoolTimeout("couldn't get a connection after 2.00 sec")
        except PoolTimeout as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as exc:
        return exc


@pytest.mark.parametrize("make_error", [cancelled_statement, pool_timeout])
def test_an_api_request_the_database_cannot_serve_is_answered_503_overloaded(
    alice: Person, monkeypatch: pytest.MonkeyPatch, make_error: object
) -> None:
    error = make_error()  # type: ignore[operator]

    def busy(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("accounts.api.workspace_refs_for", busy)  # what /me reads
    response = alice.client().get("/api/v1/me")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["error"]["code"] == "overloaded"
    assert response.json()["error"]["type"] == "overloaded_error"


def test_views_outside_the_api_framework_get_the_same_answer() -> None:
    middleware = ServiceUnavailableMiddleware(lambda request: None)
    request = RequestFactory().get("/v1/images/generations")
    response = middleware.process_exception(request, cancelled_statement())
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == "2"
    assert json.loads(response.content)["error"]["code"] == "overloaded"


def test_other_database_errors_are_not_mistaken_for_overload() -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
    except Exception as exc:
        assert not database_unavailable(exc)
    else:
        raise AssertionError("the query should have failed")
    middleware = ServiceUnavailableMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("no")) is None
