"""The OpenAPI schema at /api/schema/ and the docs at /api/docs/."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(charlie: APIClient) -> dict[str, object]:
    response = charlie.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi_3(schema: dict[str, object]) -> None:
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 JSON schema
    assert schema["openapi"].startswith("3.")  # type: ignore[union-attr]


def test_every_operation_describes_its_errors_in_the_one_error_shape(
    schema: dict[str, object],
) -> None:
    error_ref = "#/components/schemas/Error"
    paths = schema["paths"]
    assert {"/api/v1/generations", "/v1/images/generations", "/v1/images/edits"} <= set(paths)
    for path, operations in paths.items():  # type: ignore[union-attr]
        for method, operation in operations.items():
            codes = {int(code) for code in operation["responses"]}
            assert any(200 <= code < 300 for code in codes), (method, path)
            errors = [code for code in codes if code >= 400]
            needs_key = operation.get("security", [{}]) != [{}]
            if needs_key or "requestBody" in operation or "{" in path:
                assert errors, f"{method} {path} can refuse but describes no error"
            for code in errors:
                content = operation["responses"][str(code)]["content"]["application/json"]
                assert content["schema"]["$ref"] == error_ref, (method, path, code)
            if needs_key:
                assert 401 in codes, f"{method} {path} needs a key but documents no 401"


def test_the_docs_page_loads_everything_from_this_server(
    charlie: APIClient, settings: object
) -> None:
    # Static files as in development (no collectstatic here): WhiteNoise finds them.
    settings.WHITENOISE_AUTOREFRESH = True  # type: ignore[attr-defined]
    settings.WHITENOISE_USE_FINDERS = True  # type: ignore[attr-defined]
    page = charlie.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert not re.search(r"https?://", html.replace("http://testserver", ""))
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert charlie.get(asset).status_code == 200, asset
