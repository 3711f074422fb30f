"""/healthz and /readyz in process: ready on a migrated database, not with a migration
missing (the database and Redis away: tests/e2e/test_readiness.py)."""

from __future__ import annotations

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from config import health

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_checks() -> None:
    health._last = None
    health._migrations_applied = False


def test_healthz_and_readyz_answer_ok_when_everything_is_there() -> None:
    assert Client().get("/healthz").status_code == 200
    ready = Client().get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json() == {"status": "ready"}


def test_readyz_fails_closed_while_a_migration_is_not_applied() -> None:
    latest = MigrationRecorder.Migration.objects.filter(app="generation").latest("id")
    latest.delete()  # as if the code were deployed before `migrate` ran (rolled back after)
    answer = Client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "reason": "migrations: 1 not applied"}
