"""The pipelined worker (claim, render and settle overlapping on threads) settles each job
once, in order of claim, with the same images as the serial worker; a picture that cannot
be stored fails its own job only.

Transactional: the pipeline's threads have database connections of their own, which see
only what is committed. The demo model renders in process."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import override_settings

from billing.models import QuotaCounter, QuotaLedgerEntry
from generation import worker
from generation.models import Job
from generation.settling import OUTPUT_FAILED
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db(transaction=True)


def submit(person: Person, n: int) -> str:
    body = small_job(prompt=f"a green square number {n}", steps=2, seed=n)
    response = person.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def submit_round(tag: str) -> list[str]:
    """Six jobs of three workspaces (none reaches its in-flight cap in a batch of two)."""
    people = [make_person(f"{tag}{i}@example.com", plan="pro") for i in range(3)]
    return [submit(person, n * 3 + i) for n in range(2) for i, person in enumerate(people)]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk, with what must differ between two jobs asking for the
    same picture left out: the job's own id, and the C2PA manifest (`caBX`: it names the
    image's own id and carries its own signature), whose kind alone is kept."""
    stream, chunks = io.BytesIO(data[8:]), []
    while header := stream.read(8):
        length, kind = struct.unpack(">I4s", header)
        body = stream.read(length)
        stream.read(4)  # CRC, which covers type and data
        if kind == b"caBX":
            chunks.append((kind, b"C2PA manifest"))
        elif not (kind == b"tEXt" and body.startswith(b"job\0")):
            chunks.append((kind, body))
    return chunks


def stored(job: Job) -> bytes:
    (image,) = job.images.all()
    with default_storage.open(image.file.name, "rb") as handle:
        return handle.read()


@override_settings(GENERATION_BATCH_SIZE=2)
def test_the_pipelined_worker_settles_each_job_once_in_order_of_claim_as_the_serial_one() -> None:
    with override_settings(WORKER_PIPELINE=True):
        pipelined_ids = submit_round("piped")
        worker.ticket_run(pipelined_ids[0])
    with override_settings(WORKER_PIPELINE=False):
        serial_ids = submit_round("serial")
        worker.ticket_run(serial_ids[0])

    pipelined = list(Job.objects.filter(pk__in=pipelined_ids).order_by("started_at"))
    assert {job.status for job in pipelined} == {Job.Status.SUCCEEDED}
    assert {job.attempts for job in pipelined} == {1}
    assert len({job.started_at for job in pipelined}) == 3  # three batches of two
    # Settled in the order they were claimed: no batch finishes before an earlier one.
    finished = [job.finished_at for job in pipelined]
    assert finished == sorted(finished)
    captures = QuotaLedgerEntry.objects.filter(job__in=pipelined, kind="capture")
    assert sorted(str(entry.job_id) for entry in captures) == sorted(pipelined_ids)

    serial = {
        (job.prompt, job.seed): job for job in Job.objects.filter(pk__in=serial_ids)
    }  # fmt: skip
    for job in pipelined:
        twin = serial[(job.prompt, job.seed)]
        assert twin.status == Job.Status.SUCCEEDED
        assert png_chunks(stored(job)) == png_chunks(stored(twin))
        assert (b"caBX", b"C2PA manifest") in png_chunks(stored(job))


def test_a_picture_that_cannot_be_stored_fails_its_own_job_alone() -> None:
    pat, sam = make_person("pat@example.com", plan="pro"), make_person("sam@example.com", "pro")
    kept, lost = submit(pat, 1), submit(sam, 2)
    # A file where the job's image folder must go: storing its picture fails, for real.
    blocker = Path(settings.MEDIA_ROOT) / "images" / str(sam.workspace.pk) / lost
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    try:
        with override_settings(WORKER_PIPELINE=True):
            worker.ticket_run(kept)
    finally:
        blocker.unlink()

    assert Job.objects.get(pk=kept).status == Job.Status.SUCCEEDED
    failed = Job.objects.get(pk=lost)
    assert failed.status == Job.Status.FAILED
    assert failed.error_code == OUTPUT_FAILED
    assert failed.error_message == worker.FAILURES[OUTPUT_FAILED]
    assert not failed.images.exists()
    kinds = sorted(QuotaLedgerEntry.objects.filter(job=failed).values_list("kind", flat=True))
    assert kinds == ["release", "reserve"]
    assert QuotaCounter.objects.get(workspace=sam.workspace).used == 0
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == 1
    assert Job.objects.get(pk=kept).images.count() == 1
