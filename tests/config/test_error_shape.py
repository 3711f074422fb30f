from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import Person

pytestmark = pytest.mark.django_db


def assert_error_shape(body: dict[str, object]) -> dict[str, object]:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert {"code", "message", "type", "param"} <= set(error)
    return error


def test_unknown_api_path_is_a_json_404(charlie: APIClient) -> None:
    response = charlie.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert assert_error_shape(response.json())["code"] == "not_found"


def test_unknown_job_is_a_json_404(alice: Person) -> None:
    response = alice.client().get("/api/v1/generations/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert assert_error_shape(response.json())["type"] == "not_found_error"


def test_wrong_method_is_a_405_in_the_error_shape(alice: Person) -> None:
    response = alice.client().delete("/api/v1/generations")
    assert response.status_code == 405
    assert assert_error_shape(response.json())["code"] == "method_not_allowed"


def test_unexpected_errors_are_500_in_the_error_shape(
    alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("generation.api.jobs_for", explode)
    client = alice.client()
    client.raise_request_exception = False
    response = client.get("/api/v1/generations")
    assert response.status_code == 500
    error = assert_error_shape(response.json())
    assert error["code"] == "server_error"
    assert "boom" not in str(error["message"])
