"""At 10^5 queued jobs across a thousand workspaces, a claim and a place are index lookups:
the plans show index scans with a LIMIT and no sort over the queue, the rows they read do not
grow with the queue, and the claim still takes the right job in fair order."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from psycopg import sql as psql

from bench.queue_fill import queue_fill
from generation import queue
from generation.models import Job, QueueFlow
from generation.queue import flows_rebuild, job_claim_batch, job_queue_place
from generation.services import GeneratedImage, jobs_settle

pytestmark = pytest.mark.django_db

JOBS = 100_000
WORKSPACES = 1_000
LANES = ["priority", "standard", "free"]


def plan_of(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        [result] = cursor.fetchone()
    return (json.loads(result) if isinstance(result, str) else result)[0]["Plan"]


def generic_plan_of(statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `statement` run as a prepared statement under
    plan_cache_mode=force_generic_plan: on the plan made once, knowing none of its values."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    text = re.sub(r"%\((\w+)\)s", number, statement)
    values = psql.SQL(", ").join(psql.Literal(params[name]) for name in names)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_statement AS {text}")
        explain = psql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic_statement({})")
        cursor.execute(explain.format(values).as_string(connection.connection))
        [result] = cursor.fetchone()
        cursor.execute("DEALLOCATE generic_statement")
    return (json.loads(result) if isinstance(result, str) else result)[0]["Plan"]


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


def rows_read(plan: dict[str, Any], table: str) -> float:
    """Rows the plan's scans of `table` returned, over all their loops."""
    return sum(
        node["Actual Rows"] * node["Actual Loops"]
        for node in nodes(plan)
        if node.get("Relation Name") == table
    )


def fair_first() -> tuple[int, int]:
    """The first queued job in fair order among workspaces with room, by brute force."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT job.finish_tag, job.queue_seq FROM generation_job AS job
            WHERE job.status = 'queued' AND job.max_in_flight > (
                SELECT COUNT(*) FROM generation_job AS running
                WHERE running.workspace_id = job.workspace_id AND running.status = 'running'
            )
            ORDER BY job.finish_tag, job.queue_seq LIMIT 1
            """
        )
        return cursor.fetchone()


def test_claims_and_places_use_the_indexes_at_a_hundred_thousand_queued_jobs() -> None:
    workspaces = queue_fill(jobs=JOBS, workspaces=WORKSPACES)
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == JOBS
    assert queue.queue_length() == JOBS

    # The claim's plan: an index range scan over the eligible flows of each lane, then over
    # each flow's queued jobs; nothing sorted, nothing scanned whole.
    claim_plan = plan_of(queue.claim_candidates_sql(len(LANES)), {"lanes": LANES, "flows": 32})
    types = {node["Node Type"] for node in nodes(claim_plan)}
    assert "Sort" not in types and "Seq Scan" not in types, types
    indexes = {node.get("Index Name") for node in nodes(claim_plan)}
    assert {"queueflow_eligible", "job_queued_by_workspace"} <= indexes
    assert rows_read(claim_plan, "generation_job") <= 3 * 32 * 4  # flows x room, not the queue

    expected = fair_first()
    batch = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert len(batch) == 8
    assert min((job.finish_tag, job.queue_seq) for job in batch) == expected

    # A job's place: a primary-key read in the database, then a rank in Redis.
    job = Job.objects.filter(status=Job.Status.QUEUED).order_by("-queue_seq").first()
    place_plan = plan_of(
        "SELECT finish_tag, queue_seq, num_images FROM generation_job "
        "WHERE id = %(id)s AND status = 'queued'",
        {"id": job.pk},
    )
    assert [node["Node Type"] for node in nodes(place_plan)] == ["Index Scan"]
    assert place_plan["Index Name"] == "generation_job_pkey"
    with connection.cursor() as cursor:  # what the place must say, counted the slow way
        cursor.execute(
            "SELECT COUNT(*), SUM(num_images) FROM generation_job WHERE status = 'queued' "
            "AND (finish_tag, queue_seq) < (%s, %s)",
            [job.finish_tag, job.queue_seq],
        )
        ahead, images = cursor.fetchone()
    place = job_queue_place(job)
    assert place is not None
    assert (place.position, place.images_ahead) == (ahead + 1, images)

    # A new job's wait: V (a table of one row) and the workspace's flow by its primary key.
    new_plan = plan_of(queue.NEXT_START_SQL, {"workspace": workspaces[5]})
    scans = {(node["Node Type"], node.get("Relation Name")) for node in nodes(new_plan)}
    assert ("Index Scan", "generation_queueflow") in scans
    assert {relation for kind, relation in scans if kind == "Seq Scan"} <= {"generation_queueclock"}


def test_a_workspace_at_its_cap_does_not_lengthen_the_claim_s_scan() -> None:
    """The workspace with the best tags has 50,000 jobs queued and runs its cap: a claim
    passes over it without reading its jobs."""
    workspaces = queue_fill(jobs=JOBS // 2, workspaces=1, prefix="flood ", index=False)
    [flood] = workspaces
    batch = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert {job.workspace_id for job in batch} == {flood}  # the flood runs its cap (4)
    queue_fill(jobs=JOBS // 2, workspaces=WORKSPACES, index=False)
    assert QueueFlow.objects.get(workspace_id=flood).running == len(batch)

    plan = plan_of(queue.claim_candidates_sql(len(LANES)), {"lanes": LANES, "flows": 32})
    assert rows_read(plan, "generation_job") <= 3 * 32 * 4
    expected = fair_first()
    [first, *_] = sorted(
        job_claim_batch(worker="w2", lanes=LANES, max_images=8),
        key=lambda job: (job.finish_tag, job.queue_seq),
    )
    assert (first.finish_tag, first.queue_seq) == expected
    assert first.workspace_id != flood


def test_a_workspace_with_a_large_cap_adds_no_more_than_a_claim_takes() -> None:
    """The workspace with the best tags has 50,000 jobs queued and room for a million at
    once: the claim reads as many of its jobs as it could take, not its backlog."""
    [big] = queue_fill(jobs=JOBS // 2, workspaces=1, prefix="big ", index=False)
    Job.objects.filter(workspace_id=big).update(max_in_flight=10**6)
    queue_fill(jobs=JOBS // 2, workspaces=WORKSPACES, index=False)
    flows_rebuild()
    assert QueueFlow.objects.get(workspace_id=big).max_in_flight == 10**6

    plan = plan_of(queue.claim_candidates_sql(len(LANES)), {"lanes": LANES, "flows": 32})
    assert rows_read(plan, "generation_job") <= 3 * 32 * 4 + 32
    expected = fair_first()
    batch = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert len(batch) == 8
    assert min((job.finish_tag, job.queue_seq) for job in batch) == expected


def prepared_plans(start: str) -> tuple[int, int]:
    """(generic, custom) plans this connection ran for its prepared statement that starts so."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            [f"%{start}%"],
        )
        [plans] = cursor.fetchall()
    return plans


def seq_scans(plan: dict[str, Any]) -> set[str]:
    return {node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"}


@pytest.mark.parametrize("workspaces", [WORKSPACES, JOBS])
def test_claim_and_settle_run_their_flow_statements_on_generic_plans_that_read_by_index(
    workspaces: int,
) -> None:
    """The claim's start and the flows' refresh run on the plans their connection prepared
    once (the lock statements set plan_cache_mode for the transaction). At 10^5 queued jobs
    those plans read the jobs by index. The flows' table too, once it is large: a thousand
    flows a generic plan reads whole, which PostgreSQL prices below probing its index for
    each of the claim's workspaces; at 10^5 flows it probes."""
    queue_fill(jobs=JOBS, workspaces=workspaces)
    with connection.cursor() as cursor:  # as autovacuum would have by now: every table's stats
        cursor.execute("ANALYZE")
    for n in range(8):  # psycopg prepares a statement the fifth time a connection runs it
        batch = job_claim_batch(worker=f"w{n}", lanes=LANES, max_images=8)
        stored = [
            (
                job,
                [GeneratedImage(png=b"", width=8, height=8, seed=1) for _ in range(job.num_images)],
                [f"{job.pk}-{index}.png" for index in range(job.num_images)],
            )
            for job in batch
        ]
        assert jobs_settle(worker=f"w{n}", results=stored) == {job.pk for job in batch}
    for statement in ("WITH started AS (", "WITH derived AS ("):
        generic, custom = prepared_plans(statement)
        assert generic >= 3 and custom == 0, (statement, generic, custom)

    refresh = generic_plan_of(
        queue._FLOWS_REFRESH_SQL, {"workspaces": [job.workspace_id for job in batch]}
    )
    chosen = [c.id for c in queue.fair_candidates(lanes=LANES, limit=32)[:4]]
    params = {"jobs": chosen, "worker": "w", "now": timezone.now(), "all_lanes": LANES}
    start = generic_plan_of(queue._START_SQL, params)
    assert Job.objects.filter(pk__in=chosen, status=Job.Status.RUNNING).count() == len(chosen)
    indexes = {node.get("Index Name") for node in nodes(start)}
    assert {"generation_job_pkey", "queueflow_eligible", "job_queued_by_workspace"} <= indexes
    small_tables = {"generation_queueclock"}  # V: one row
    if workspaces < JOBS:
        small_tables.add("generation_queueflow")
    for plan in (refresh, start):
        assert seq_scans(plan) <= small_tables, seq_scans(plan)
        assert rows_read(plan, "generation_job") <= 3 * 32 * 4  # the claim's jobs, not the queue
