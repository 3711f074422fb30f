"""API admission benchmark: job submission against a bare authenticated endpoint.

Run with `make bench-admission` (embedded PostgreSQL and Redis under var/bench). It starts
gunicorn with the project's config, then, in one run:

1. drives POST /api/v1/generations from many concurrent clients across many workspaces,
   each workspace sending twice its quota, and GET /api/v1/me (auth only) the same way,
   alternating rounds so that machine noise hits both alike; and, in the same rounds, the
   floor under the submission (bench/floor_urls.py, its own server: the same body validated
   and the job inserted, none of the platform's admission), whose rate over the bare GET's
   bounds the ratio on this stack (printed, not in RESULT);
2. counts over-admissions: jobs beyond a workspace's limit (must be 0);
3. measures submission latency for a workspace with 100 past jobs and one with 1,000,000.

Goals: submit_rps / bare_rps >= 0.5, history_ratio <= 1.2, over_admissions == 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402

from accounts.keys import api_key_create  # noqa: E402
from accounts.models import Workspace  # noqa: E402
from accounts.selectors import workspaces_for  # noqa: E402
from accounts.services import user_signup  # noqa: E402
from bench.common import LoadResult, gunicorn, run_load  # noqa: E402
from bench.floor import FLOOR_PATH, floor_jobs_delete, floor_server  # noqa: E402
from billing.models import Plan, Subscription  # noqa: E402
from generation.models import Job  # noqa: E402

WORKSPACES = 40
QUOTA = 25  # per workspace; each workspace is sent twice as many requests
CONCURRENCY = 16
ROUNDS = 3
HISTORY_SAMPLES = 300
BODY = {"prompt": "a red circle on a gray background", "width": 64, "height": 64}


def setup_plan() -> Plan:
    plan, _ = Plan.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench", "daily_images": QUOTA, "images_per_request": 1,
            "requests_per_minute": 100_000, "lane": "standard", "max_jobs_in_flight": 10_000,
            "max_wait_seconds": 10**9,  # no workers run here: admission must not shed
        },
    )  # fmt: skip
    return plan


def new_workspace(email: str, plan: Plan) -> tuple[Workspace, str]:
    user = user_signup(email=email, password="bench passphrase 1234")
    workspace = workspaces_for(user).get()
    Subscription.objects.create(workspace=workspace, plan=plan)
    return workspace, api_key_create(workspace=workspace, user=user)[1]


def add_history(workspace: Workspace, jobs: int) -> None:
    """Insert `jobs` finished jobs (with images reserved and captured) in one statement each."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO generation_job (id, workspace_id, kind, model, prompt, negative_prompt,
                width, height, steps, guidance, seed, num_images, lane, status, progress,
                attempts, worker, error_code, error_message, request_hash, created_at,
                finished_at, source_image, dispatch_weight, max_in_flight, finish_tag, queue_seq)
            SELECT gen_random_uuid(), %s, 'text_to_image', 'demo', 'old prompt ' || n, '',
                64, 64, 4, 3.0, n, 1, 'standard', 'succeeded', 1.0, 1, 'bench', '', '', '',
                now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval, '',
                1, 1, 0, 0
            FROM generate_series(1, %s) AS n
            """,
            [workspace.pk, jobs],
        )
        cursor.execute(
            """
            INSERT INTO billing_quotaledgerentry (job_id, workspace_id, kind, images,
                window_start, created_at)
            SELECT job.id, job.workspace_id, kinds.kind, 1, date_trunc('day', job.created_at),
                job.created_at
            FROM generation_job AS job, (VALUES ('reserve'), ('capture')) AS kinds(kind)
            WHERE job.workspace_id = %s
            """,
            [workspace.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def fmt(result: LoadResult) -> str:
    return (
        f"{result.rps:8.1f} req/s  p50 {result.p50:6.1f} ms  p99 {result.percentile(0.99):6.1f} ms"
        f"  statuses {dict(sorted(result.statuses.items()))}"
    )


def merge(results: list[LoadResult]) -> LoadResult:
    statuses: dict[int, int] = {}
    for result in results:
        for code, count in result.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.seconds for r in results),
        [ms for r in results for ms in r.latencies_ms],
        statuses,
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    plan = setup_plan()
    print(f"Creating {WORKSPACES} workspaces with a quota of {QUOTA} images each ...", flush=True)
    keys = [new_workspace(f"bench{i}@example.com", plan)[1] for i in range(WORKSPACES)]

    print("Adding 1,000,000 past jobs to one workspace's history ...", flush=True)
    plan.daily_images = 1_000_000_000
    plan.save()
    small_ws, small_key = new_workspace("small-history@example.com", plan)
    big_ws, big_key = new_workspace("big-history@example.com", plan)
    add_history(small_ws, 100)
    add_history(big_ws, 1_000_000)
    plan.daily_images = QUOTA
    plan.save()

    per_round = WORKSPACES * QUOTA * 2 // ROUNDS
    with gunicorn() as url, floor_server() as floor_url:

        def submit(session: object, n: int, offset: list[int] = [0]) -> object:  # noqa: B006
            key = keys[(n + offset[0]) % WORKSPACES]
            return session.post(  # type: ignore[attr-defined]
                f"{url}/api/v1/generations", json=BODY,
                headers={"Authorization": f"Bearer {key}"}, timeout=30,
            )  # fmt: skip

        def bare(session: object, n: int) -> object:
            return session.get(  # type: ignore[attr-defined]
                f"{url}/api/v1/me",
                headers={"Authorization": f"Bearer {keys[n % WORKSPACES]}"},
                timeout=30,
            )

        def floor(session: object, n: int) -> object:
            return session.post(  # type: ignore[attr-defined]
                f"{floor_url}{FLOOR_PATH}", json=BODY,
                headers={"Authorization": f"Bearer {keys[n % WORKSPACES]}"}, timeout=30,
            )  # fmt: skip

        run_load(bare, total=200, concurrency=CONCURRENCY)  # warm up both paths
        run_load(floor, total=200, concurrency=CONCURRENCY)
        submits, bares, floors = [], [], []
        for _ in range(ROUNDS):
            bares.append(run_load(bare, total=per_round, concurrency=CONCURRENCY))
            submits.append(run_load(submit, total=per_round, concurrency=CONCURRENCY))
            floors.append(run_load(floor, total=per_round, concurrency=CONCURRENCY))
        submit_result, bare_result, floor_result = merge(submits), merge(bares), merge(floors)
        if set(floor_result.statuses) != {202}:
            sys.exit(f"the floor view failed: {floor_result.statuses}")
        floor_jobs_delete(floor_result.requests + 200)

        # Submission latency against history size; the workspaces' limit is not binding.
        plan.daily_images = 1_000_000_000
        plan.save()
        history: dict[str, list[LoadResult]] = {"small": [], "big": []}
        for _ in range(3):
            for name, key in (("small", small_key), ("big", big_key)):

                def post(session: object, n: int, key: str = key) -> object:
                    return session.post(  # type: ignore[attr-defined]
                        f"{url}/api/v1/generations", json=BODY,
                        headers={"Authorization": f"Bearer {key}"}, timeout=30,
                    )  # fmt: skip

                history[name].append(run_load(post, total=HISTORY_SAMPLES // 3, concurrency=1))

    bench_workspaces = Subscription.objects.filter(plan=plan).values_list("workspace", flat=True)
    admitted = (
        Job.objects.filter(workspace_id__in=list(bench_workspaces))
        .exclude(workspace_id__in=[small_ws.pk, big_ws.pk])
        .values("workspace_id")
        .annotate(n=Count("id"))
    )
    over_admissions = sum(max(row["n"] - QUOTA, 0) for row in admitted)
    accepted = submit_result.statuses.get(202, 0)
    small, big = merge(history["small"]), merge(history["big"])
    history_ratio = big.p50 / small.p50
    ratio = submit_result.rps / bare_result.rps

    print(f"bare   GET /api/v1/me         {fmt(bare_result)}")
    print(f"submit POST /api/v1/generations {fmt(submit_result)}")
    print(f"floor  POST {FLOOR_PATH}          {fmt(floor_result)}")
    print(f"submit/bare throughput ratio: {ratio:.2f} (goal >= 0.5)")
    print(
        f"floor/bare: {floor_result.rps / bare_result.rps:.2f} (what validation and the INSERT "
        f"alone reach); submit/floor: {submit_result.rps / floor_result.rps:.2f}"
    )
    print(f"accepted {accepted} of {submit_result.requests}; expected {WORKSPACES * QUOTA}")
    print(f"over-admissions: {over_admissions} (must be 0)")
    print(f"history 100 jobs:       p50 {small.p50:.1f} ms  p99 {small.percentile(0.99):.1f} ms")
    print(f"history 1,000,000 jobs: p50 {big.p50:.1f} ms  p99 {big.percentile(0.99):.1f} ms")
    print(f"history ratio (p50): {history_ratio:.2f} (goal <= 1.2)")
    print(
        f"RESULT submit_rps={submit_result.rps:.1f} bare_rps={bare_result.rps:.1f} "
        f"ratio={ratio:.2f} submit_p99_ms={submit_result.percentile(0.99):.1f} "
        f"over_admissions={over_admissions} history_ratio={history_ratio:.2f}"
    )
    if accepted != WORKSPACES * QUOTA or set(submit_result.statuses) - {202, 429}:
        sys.exit(f"unexpected answers: {accepted} accepted, expected {WORKSPACES * QUOTA}")


if __name__ == "__main__":
    main()
