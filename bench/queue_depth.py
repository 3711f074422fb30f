"""Queue-depth benchmark: a worker's claim and a job's place at 10^2 and at 10^6 queued jobs.

Run with `make bench-queue` (embedded PostgreSQL and Redis under var/bench). The queue is
filled in SQL (bench/queue_fill.py): 10^2 jobs across 10^2 workspaces, then up to 10^6
across 10^3 more. At each depth it times, ROUNDS times each, and reports medians in ms:

- claim: generation.queue.job_claim_batch taking a batch of 8 images, in a transaction
  that is rolled back afterwards so that every round sees the same queue;
- place: generation.queue.job_queue_place of the newest queued job (the deepest place);
- ahead: generation.queue.ahead_of_new for a new free workspace (admission's estimate);
- claim_sql: the claim's candidate query as PostgreSQL itself times it (EXPLAIN ANALYZE,
  planning and execution), which the machine's other load disturbs least.

Goal: each at 10^6 within 10 ms and within 2x of itself at 10^2 (O(log n), not O(n)).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from collections.abc import Callable  # noqa: E402

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from bench.queue_fill import queue_fill  # noqa: E402
from generation.models import Job  # noqa: E402
from generation.queue import (  # noqa: E402
    ahead_of_new,
    claim_candidates_sql,
    job_claim_batch,
    job_queue_place,
    queue_index_add,
    queue_length,
)

ROUNDS = 50
LANES = ["priority", "standard", "free"]


def timed(action: Callable[[], object]) -> float:
    """Median milliseconds of `action` over ROUNDS rounds (after one to warm up)."""
    action()
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def claim_and_undo() -> None:
    with transaction.atomic():
        batch = job_claim_batch(worker="bench", lanes=LANES, max_images=8)
        assert batch, "nothing to claim"
        transaction.set_rollback(True)
    queue_index_add(batch)  # the claim took them out of the place index; they are back


def claim_sql_ms() -> float:
    """The candidate query's planning and execution time, as PostgreSQL reports it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {claim_candidates_sql(len(LANES))}",
            {"lanes": LANES, "flows": 32},
        )
        [result] = cursor.fetchone()
    return result[0]["Planning Time"] + result[0]["Execution Time"]


def server_timed(action: Callable[[], float]) -> float:
    action()
    return median(action() for _ in range(ROUNDS))


def measure() -> dict[str, float]:
    newest = Job.objects.filter(status=Job.Status.QUEUED).order_by("-queue_seq").first()
    place = job_queue_place(newest)
    print(f"  {queue_length():>9,} queued; the newest job's place is {place.position:,}")
    return {
        "claim": timed(claim_and_undo),
        "place": timed(lambda: job_queue_place(newest)),
        "ahead": timed(lambda: ahead_of_new(lane="free")),
        "claim_sql": server_timed(claim_sql_ms),
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    results = {}
    for depth, jobs, workspaces in ((100, 100, 100), (1_000_000, 999_900, 1_000)):
        started = time.monotonic()
        queue_fill(jobs=jobs, workspaces=workspaces, prefix=f"depth {depth} ")
        with connection.cursor() as cursor:
            # Vacuumed and written out here (queue_fill only analyzes: the tests fill inside a
            # transaction), not by autovacuum and a checkpoint during the timings, which a
            # million inserted rows set off.
            cursor.execute("VACUUM ANALYZE generation_job")
            cursor.execute("CHECKPOINT")
        print(f"Filled to {depth:,} jobs in {time.monotonic() - started:.0f} s")
        results[depth] = measure()
        for name, ms in results[depth].items():
            print(f"  {name:<9} {ms:7.2f} ms (median of {ROUNDS})")
    small, large = results[100], results[1_000_000]
    print(
        "RESULT "
        + " ".join(
            f"{name}_ms_1e2={small[name]:.2f} {name}_ms_1e6={large[name]:.2f} "
            f"{name}_ratio={large[name] / small[name]:.2f}"
            for name in ("claim", "place", "ahead", "claim_sql")
        )
    )


if __name__ == "__main__":
    main()
