"""The database connection binds parameters on the server and prepares what it repeats
(DB_SERVER_SIDE_BINDING, DB_PREPARE_THRESHOLD): PostgreSQL plans a submission's statements
once per connection instead of once per request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from billing.models import Plan
from billing.selectors import plan_for
from generation.models import PolicyRule
from generation.policy import _STANDARD_RULES_SQL, policy_check
from generation.queue import job_claim_batch
from tests.conftest import make_person, small_job

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


def _prepared_count(fragment: str) -> int:
    return sum(fragment in statement for statement in _prepared())


TABLES = ("billing_plan", "generation_policyrule", "generation_job")


@contextlib.contextmanager
def _a_migration_adds_a_column() -> Iterator[None]:
    """Another connection adds a column to each table and commits, as a deploy's migration
    does while web processes and workers are serving; it is dropped again afterwards."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as other:
        for table in TABLES:
            other.execute(f'ALTER TABLE "{table}" ADD COLUMN atelier_test_added integer')
        try:
            yield
        finally:
            for table in TABLES:
                other.execute(f'ALTER TABLE "{table}" DROP COLUMN atelier_test_added')


@pytest.mark.django_db(transaction=True)  # the other connection's ALTER waits for no lock
def test_raw_statements_survive_a_migration_that_adds_a_column() -> None:
    """A prepared `SELECT *` fails once its table gains a column ("cached plan must not
    change result type"), on every connection that prepared it, until its process restarts.
    The hot paths' raw statements name their columns, so a migration run while processes
    are serving breaks none of them."""
    Plan.objects.filter(slug="pro").update(max_jobs_in_flight=100)  # one claim each below
    pro = make_person("prepared@example.com", plan="pro")
    for n in range(8):
        response = pro.client().post("/api/v1/generations", small_job(seed=n), format="json")
        assert response.status_code == 202
    for _ in range(7):
        assert plan_for(pro.workspace).slug == "pro"
        policy_check(workspace=pro.workspace, user=pro.user, prompt="a quiet lake")
        assert len(job_claim_batch(worker="w-prepared", lanes=["priority"], max_images=1)) == 1
    assert _prepared_count("FROM billing_plan WHERE id = COALESCE") == 1
    assert _prepared_count("FROM generation_policyrule WHERE active") == 1
    assert _prepared_count("UPDATE generation_job SET status = 'running'") == 1

    with _a_migration_adds_a_column():
        assert plan_for(pro.workspace).slug == "pro"
        policy_check(workspace=pro.workspace, user=pro.user, prompt="a quiet lake")
        [claimed] = job_claim_batch(worker="w-prepared", lanes=["priority"], max_images=1)
        assert claimed.status == "running" and claimed.worker == "w-prepared"
