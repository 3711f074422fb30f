"""config/sql.py's model_rows makes of a raw statement's rows what Model.objects.raw makes, and
its model_insert writes the row that save(force_insert=True) writes."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Model

from accounts.models import Workspace
from billing.models import Plan
from config.sql import column_list, model_insert, model_rows
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


def job_like(workspace: Workspace, **fields: object) -> Job:
    return Job(
        workspace=workspace, model="demo", prompt="a heron", width=64, height=64, steps=4,
        guidance=3.5, seed=11, webhook_events_filter=["completed"], **fields,
    )  # fmt: skip


def test_insert_writes_the_row_the_orm_writes() -> None:
    workspace = Workspace.objects.create(name="insert")
    ours = job_like(workspace, source_image=ContentFile(b"photo", name="photo.png"), strength=0.5)
    theirs = job_like(workspace, source_image=ContentFile(b"photo", name="photo.png"), strength=0.5)
    model_insert(ours)
    theirs.save(force_insert=True)
    assert not ours._state.adding and ours._state.db == theirs._state.db
    # The upload stored as the ORM stores it (pre_save), under the field's upload_to.
    assert ours.source_image.name.startswith("sources/") and ours.source_image.name.endswith(".png")
    with default_storage.open(ours.source_image.name) as stored:
        assert stored.read() == b"photo"

    def row(job: Job) -> dict[str, object]:
        values = as_fields(Job.objects.get(pk=job.pk))
        return {k: v for k, v in values.items() if k not in {"id", "source_image", "created_at"}}

    assert row(ours) == row(theirs)
    assert Job.objects.get(pk=ours.pk).created_at == ours.created_at
    assert Job.objects.get(pk=ours.pk).webhook_events_filter == ["completed"]  # JSON, as JSON
    for job in (ours, theirs):
        default_storage.delete(job.source_image.name)


def test_insert_refuses_a_duplicate_as_the_orm_does() -> None:
    workspace = Workspace.objects.create(name="insert twice")
    model_insert(job_like(workspace, idempotency_key="once"))
    with pytest.raises(IntegrityError), transaction.atomic():
        model_insert(job_like(workspace, idempotency_key="once"))
    assert Job.objects.filter(workspace=workspace).count() == 1
