"""The database connection binds parameters on the server and prepares what it repeats
(DB_SERVER_SIDE_BINDING, DB_PREPARE_THRESHOLD): PostgreSQL plans a submission's statements
once per connection instead of once per request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from generation.models import PolicyRule
from generation.policy import _STANDARD_RULES_SQL

pytestmark = pytest.mark.django_db


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_run_often_is_prepared_once_and_reused() -> None:
    assert settings.DATABASES["default"]["OPTIONS"]["server_side_binding"] is True
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    assert threshold == settings.DB_PREPARE_THRESHOLD == 5
    assert not any("generation_policyrule" in s for s in _prepared())
    for _ in range(threshold + 3):
        list(PolicyRule.objects.raw(_STANDARD_RULES_SQL))
    assert [s for s in _prepared() if "generation_policyrule" in s] == [_STANDARD_RULES_SQL]


def test_parameters_are_bound_by_the_server() -> None:
    with connection.cursor() as cursor:
        # Client-side binding would quote the value into the text; the server sees $1.
        cursor.execute("SELECT %s::text, current_query()", ["it's bound"])
        value, query = cursor.fetchone()
    assert value == "it's bound"
    assert "$1" in query and "it's bound" not in query
