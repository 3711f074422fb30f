"""config/sql.py's model_rows makes of a raw statement's rows what Model.objects.raw makes."""

from __future__ import annotations

import pytest
from django.db.models import Model

from accounts.models import Workspace
from billing.models import Plan
from config.sql import column_list, model_rows
from generation.models import Job, PolicyRule

pytestmark = pytest.mark.django_db


def as_fields(instance: Model) -> dict[str, object]:
    return {
        field.attname: (getattr(instance, field.attname), type(getattr(instance, field.attname)))
        for field in instance._meta.concrete_fields
    }


@pytest.mark.parametrize("events", [["start", "completed"], []])
def test_rows_are_the_instances_raw_makes(events: list[str]) -> None:
    workspace = Workspace.objects.create(name="rows")
    job = Job.objects.create(
        workspace=workspace, model="demo", prompt="a fox", width=64, height=64, steps=4,
        guidance=3.5, strength=0.6, seed=7, webhook="https://example.com/hook",
        webhook_events_filter=events,
    )  # fmt: skip
    PolicyRule.objects.create(term="Some Painter", reason="A living artist.")
    # Composed of constants: the models' column names.
    statements = [
        (Job, f"SELECT {column_list(Job)} FROM generation_job WHERE id = %(id)s", {"id": job.pk}),  # noqa: S608
        (Plan, f"SELECT {column_list(Plan)} FROM billing_plan ORDER BY id", {}),  # noqa: S608
        (PolicyRule, f"SELECT {column_list(PolicyRule)} FROM generation_policyrule", {}),  # noqa: S608
    ]
    for model, sql, params in statements:
        made = model_rows(model, sql, params)
        raw = list(model.objects.raw(sql, params))
        assert made and len(made) == len(raw)
        for ours, theirs in zip(made, raw, strict=True):
            assert as_fields(ours) == as_fields(theirs)
            assert not ours._state.adding and ours._state.db == theirs._state.db
    [loaded] = model_rows(Job, statements[0][1], statements[0][2])
    assert loaded.webhook_events_filter == events  # the JSON column, parsed
    loaded.prompt = "a fox, saved again"
    loaded.save(update_fields=["prompt"])  # an instance the ORM can save, as raw()'s are
    assert Job.objects.get(pk=job.pk).prompt == "a fox, saved again"
