"""Overload benchmark: the day the GPUs melt, at 1x, 3x and 10x of capacity.

Run with `make bench-overload` (embedded PostgreSQL and Redis under var/bench). The real
API (gunicorn), PostgreSQL, Redis and Celery worker processes; only the GPU is simulated:
the workers' pipeline is bench/simulated_pipeline.py, a fixed time per image. Three
workers: one serving only the priority lane, two serving every lane.

Each phase offers free load at L x capacity from many free workspaces, steady load from
paid workspaces (over a hundred paid jobs per phase, so that a p95 means something), and one
paid workspace flooding the queue. A refused client waits its Retry-After once and tries
again (clients told to wait more than MAX_RETRY_AFTER give up). Printed: the paid jobs'
wait (created to started) at each load, p50 / p95 / p99, with the p95 relative to 1x (goal
at 10x: <= 2), free acceptance, the share of retries that are accepted (goal >= 0.8),
Jain's fairness index across the free workspaces (goal >= 0.9), images or credits lost
(must be 0), and how honest the estimated start each admitted job was given is (free and paid
jobs' estimates against their waits).

The workers run with GENERATION_BATCH_SECONDS=BATCH_SECONDS: at the simulated second per
image a batch then holds its worker for at most that long, so a paid job that arrives just
after a free batch started waits for a worker about that long at most, whatever the load.
(The shipped 10 s would not bound this simulated GPU's batches of 8; a real GPU makes a
batch of 8 in well under that.)
"""

from __future__ import annotations

import heapq
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Sum  # noqa: E402

from accounts.keys import api_key_create  # noqa: E402
from accounts.selectors import workspaces_for  # noqa: E402
from accounts.services import user_signup  # noqa: E402
from bench.common import PRODUCTION, ROOT, gunicorn  # noqa: E402
from billing.models import Plan, QuotaCounter, QuotaLedgerEntry, Subscription  # noqa: E402
from generation.models import Job  # noqa: E402
from generation.queue import live_workers  # noqa: E402

SECONDS_PER_IMAGE = 1.0
WORKERS = 3  # one dedicated to the priority lane, two shared
CAPACITY = WORKERS / SECONDS_PER_IMAGE  # images per second
PHASE_SECONDS = 90
LEVELS = (1, 3, 10)
FREE_WORKSPACES = 40
PAID_WORKSPACES = 12
PAID_RATE = 0.4 * CAPACITY  # steady paid demand, whatever the load: 108 jobs a phase
FLOOD_RATE = 1.0 * CAPACITY  # one paid workspace asking for as much as all the GPUs do
MAX_RETRY_AFTER = 120
BATCH_SECONDS = 4  # the most a batch holds a worker: 4 images at the simulated second each
CLIENT_THREADS = 48
BODY = {"prompt": "a red circle on a gray background", "width": 64, "height": 64, "steps": 4}


@dataclass
class Outcome:
    phase: int
    kind: str  # free, paid, flood
    workspace: int
    first_status: int = 0
    retried: bool = False
    retry_status: int = 0
    job_ids: list[str] = field(default_factory=list)
    estimates: dict[str, float] = field(default_factory=dict)  # job id: estimated start, s
    errors: list[str] = field(default_factory=list)  # what the client raised for no answer
    # Sent with the first attempt and the retry, as a careful API client does: the server
    # keeps a refused request's slot in the waiting room for that request (the same body
    # under the same key), not for another request of its workspace.
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)


def configure_plans() -> dict[str, Plan]:
    """Lift quotas and per-minute limits: this benchmark is about the GPUs, not quotas."""
    plans = {}
    for slug, max_wait in (("free", 20), ("pro", 600), ("team", 600)):
        plan = Plan.objects.get(slug=slug)
        plan.daily_images = 10**7
        plan.requests_per_minute = 10**6
        plan.max_wait_seconds = max_wait
        plan.save()
        plans[slug] = plan
    return plans


def new_key(plan: Plan | None) -> str:
    user = user_signup(email=f"{uuid.uuid4().hex[:10]}@bench.example", password="bench pass 1234")
    workspace = workspaces_for(user).get()
    if plan is not None and not plan.is_default:
        Subscription.objects.create(workspace=workspace, plan=plan)
    return api_key_create(workspace=workspace, user=user)[1]


def start_workers() -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **PRODUCTION,
        "GENERATION_PIPELINE_MODULE": "bench.simulated_pipeline",
        "ATELIER_SIMULATED_SECONDS_PER_IMAGE": str(SECONDS_PER_IMAGE),
        "GENERATION_BATCH_SECONDS": str(BATCH_SECONDS),
        "LOG_LEVEL": "WARNING",
    }
    lanes = ["priority"] + ["priority,standard,free"] * (WORKERS - 1)
    workers = []
    for index, served in enumerate(lanes):
        queues = ",".join(f"gpu.{lane}" for lane in served.split(","))
        workers.append(
            subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                    "--queues", queues, "--hostname", f"sim{index}@localhost",
                    "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
                ],
                cwd=ROOT,
                env={**env, "WORKER_LANES": served},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while live_workers() < WORKERS:  # each reports itself alive once it is ready
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start")
        time.sleep(0.5)
    return workers


def arrivals(rate: float, seconds: float, start: float) -> list[float]:
    """Evenly spaced arrival times at `rate` per second."""
    if rate <= 0:
        return []
    return [start + n / rate for n in range(int(rate * seconds))]


class Load:
    """Sends each scheduled request at its time from a pool of client threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: list[tuple[float, int, Outcome, str, bool]] = []
        self.lock = threading.Condition()
        self.sequence = 0
        self.pending = 0

    def schedule(self, at: float, outcome: Outcome, key: str, retry: bool = False) -> None:
        with self.lock:
            self.sequence += 1
            self.pending += 1
            heapq.heappush(self.queue, (at, self.sequence, outcome, key, retry))
            self.lock.notify()

    def run(self) -> None:
        threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENT_THREADS)]
        for thread in threads:
            thread.start()
        with self.lock:
            while self.pending:
                self.lock.wait(0.5)

    def client(self) -> None:
        session = requests.Session()
        while True:
            with self.lock:
                while not self.queue or self.queue[0][0] > time.monotonic():
                    timeout = self.queue[0][0] - time.monotonic() if self.queue else 0.5
                    self.lock.wait(max(timeout, 0.001))
                _at, _, outcome, key, retry = heapq.heappop(self.queue)
            try:
                response = session.post(
                    f"{self.url}/api/v1/generations", json=BODY,
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Idempotency-Key": outcome.idempotency_key,
                    },
                    timeout=60,
                )  # fmt: skip
            except requests.RequestException as exc:
                session = requests.Session()  # the server dropped the connection: count it
                outcome.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                response = requests.Response()
                response.status_code = 0
            if response.status_code == 202:
                job = response.json()
                outcome.job_ids.append(job["id"])
                outcome.estimates[job["id"]] = job["estimated_start_seconds"] or 0
            if retry:
                outcome.retry_status = response.status_code
            else:
                outcome.first_status = response.status_code
                wait = int(response.headers.get("Retry-After", "0") or 0)
                if response.status_code == 503 and 0 < wait <= MAX_RETRY_AFTER:
                    outcome.retried = True
                    self.schedule(time.monotonic() + wait, outcome, key, retry=True)
            with self.lock:
                self.pending -= 1
                self.lock.notify_all()


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def drain(timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.filter(status__in=Job.ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the queue did not drain")
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if any(values) else 1.0


def estimate_errors(outcomes: list[Outcome], jobs: dict[str, Job]) -> None:
    """How honest the estimated start each admitted job was given is: for free and paid jobs
    at each level, the median estimate and wait, the share that waited over 10 s past its
    estimate, and the rate at which that kind's jobs started (jobs over the span of their
    starts)."""
    for kind in ("free", "paid"):
        for level in LEVELS:
            admitted = [
                (estimate, jobs[job_id])
                for o in outcomes if o.kind == kind and o.phase == level
                for job_id, estimate in o.estimates.items()
            ]  # fmt: skip
            if not admitted:
                continue
            pairs = [(e, (j.started_at - j.created_at).total_seconds()) for e, j in admitted]
            starts = sorted(job.started_at for _, job in admitted)
            span = max((starts[-1] - starts[0]).total_seconds(), 1.0)
            late = sum(wait > estimate + 10 for estimate, wait in pairs) / len(pairs)
            print(
                f"{kind} estimates at {level:2d}x: estimated p50 "
                f"{percentile([e for e, _ in pairs], 0.5):5.1f} s, waited p50 "
                f"{percentile([w for _, w in pairs], 0.5):5.1f} s, {late:.0%} over 10 s late; "
                f"{len(starts) / span:.2f} jobs/s started over {span:.0f} s"
            )


def paid_wait_causes(outcomes: list[Outcome], jobs: dict[str, Job]) -> None:
    """Why the slowest paid jobs waited: for the slowest 5% of each level, the time until
    the first worker came free after the job was admitted (a batch's length bounds it), and
    the batches claimed before the job's own claim, by whose jobs they ran (jobs whose
    finish tags came first)."""
    batches: dict[tuple[str, object], list[Job]] = defaultdict(list)
    for job in jobs.values():
        if job.started_at is not None:
            batches[(job.worker, job.started_at)].append(job)
    kinds = {job_id: o.kind for o in outcomes for job_id in o.job_ids}
    spans = [
        (min(j.started_at for j in run), max(j.finished_at for j in run), run)
        for run in batches.values()
        if all(j.finished_at for j in run)
    ]
    for level in LEVELS:
        paid = sorted(
            (jobs[job_id] for o in outcomes if o.kind == "paid" and o.phase == level
             for job_id in o.job_ids),
            key=lambda job: job.started_at - job.created_at,
        )  # fmt: skip
        slowest = paid[int(len(paid) * 0.95) :]
        if not slowest:
            continue
        free_after, passed = [], Counter()
        claims = 0
        for job in slowest:
            ends = [end for start, end, _ in spans if start <= job.created_at < end]
            free_after.append(
                (min(ends) - job.created_at).total_seconds() if len(ends) == WORKERS else 0.0
            )
            for start, _, run in spans:
                if job.created_at < start < job.started_at:
                    claims += 1
                    passed.update(kinds.get(str(j.pk), "other") for j in run)
        print(
            f"slowest paid jobs at {level:2d}x ({len(slowest)}): first worker free after "
            f"{sum(free_after) / len(slowest):.2f} s on average; "
            f"{claims / len(slowest):.1f} batches claimed before each, "
            f"running {dict(passed.most_common())} jobs in all"
        )


def main() -> None:
    call_command("migrate", verbosity=0)
    plans = configure_plans()
    print(f"Capacity {CAPACITY:.1f} images/s ({WORKERS} workers x {SECONDS_PER_IMAGE} s/image)")
    free_keys = [new_key(None) for _ in range(FREE_WORKSPACES)]
    paid_keys = [new_key(plans["pro"]) for _ in range(PAID_WORKSPACES)]
    flood_key = new_key(plans["team"])
    outcomes: list[Outcome] = []
    busy_share: dict[int, float] = {}  # the machine's CPU in use while each level's load ran
    workers = start_workers()
    try:
        with gunicorn() as url:
            for level in LEVELS:
                load = Load(url)
                start = time.monotonic() + 1
                free_rate = max(level * CAPACITY - PAID_RATE - FLOOD_RATE, 0.5)
                for n, at in enumerate(arrivals(free_rate, PHASE_SECONDS, start)):
                    outcome = Outcome(level, "free", n % FREE_WORKSPACES)
                    outcomes.append(outcome)
                    load.schedule(at, outcome, free_keys[n % FREE_WORKSPACES])
                for n, at in enumerate(arrivals(PAID_RATE, PHASE_SECONDS, start)):
                    outcome = Outcome(level, "paid", n % PAID_WORKSPACES)
                    outcomes.append(outcome)
                    load.schedule(at, outcome, paid_keys[n % PAID_WORKSPACES])
                for at in arrivals(FLOOD_RATE, PHASE_SECONDS, start):
                    outcome = Outcome(level, "flood", 0)
                    outcomes.append(outcome)
                    load.schedule(at, outcome, flood_key)
                print(f"{level}x: offering {level * CAPACITY:.0f} images/s for {PHASE_SECONDS} s")
                busy, total = cpu_times()
                load.run()
                busy_after, total_after = cpu_times()
                busy_share[level] = (busy_after - busy) / max(total_after - total, 1)
                drain()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)

    jobs = {str(job.pk): job for job in Job.objects.all()}
    waits: dict[int, list[float]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.kind == "paid":
            for job_id in outcome.job_ids:
                job = jobs[job_id]
                waits[outcome.phase].append((job.started_at - job.created_at).total_seconds())
    p95 = {level: percentile(waits[level], 0.95) for level in LEVELS}
    for level in LEVELS:
        print(
            f"paid wait at {level:2d}x: p50 {percentile(waits[level], 0.5):5.2f} s, "
            f"p95 {p95[level]:5.2f} s, p99 {percentile(waits[level], 0.99):5.2f} s "
            f"({len(waits[level])} jobs)"
        )
    ratio = p95[10] / max(p95[1], 0.001)
    paid_wait_causes(outcomes, jobs)
    free_waits: dict[int, list[float]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.kind == "free":
            for job_id in outcome.job_ids:
                job = jobs[job_id]
                free_waits[outcome.phase].append((job.started_at - job.created_at).total_seconds())
    for level in LEVELS:
        print(
            f"free wait at {level:2d}x: p50 {percentile(free_waits[level], 0.5):5.2f} s, "
            f"p95 {percentile(free_waits[level], 0.95):5.2f} s "
            f"(promised at most {plans['free'].max_wait_seconds} s; {len(free_waits[level])} jobs)"
        )

    estimate_errors(outcomes, jobs)

    free_10x = [o for o in outcomes if o.kind == "free" and o.phase == 10]
    free_accept = sum(o.first_status == 202 for o in free_10x) / max(len(free_10x), 1)
    retried = [o for o in outcomes if o.retried]
    retry_success = sum(o.retry_status == 202 for o in retried) / max(len(retried), 1)
    gave_up = sum(o.first_status == 503 and not o.retried for o in outcomes)
    per_workspace = defaultdict(float)
    for outcome in free_10x:
        per_workspace[outcome.workspace] += len(outcome.job_ids)
    fairness = jain([per_workspace[w] for w in range(FREE_WORKSPACES)])

    admitted = [job_id for outcome in outcomes for job_id in outcome.job_ids]
    succeeded = sum(jobs[job_id].status == Job.Status.SUCCEEDED for job_id in admitted)
    ledger = QuotaLedgerEntry.objects.values("kind").annotate(n=Sum("images"))
    totals = {row["kind"]: row["n"] for row in ledger}
    counted = QuotaCounter.objects.aggregate(n=Sum("used"))["n"] or 0
    lost = (len(admitted) - succeeded) + abs(totals.get("capture", 0) - succeeded)
    lost += abs(counted - totals.get("reserve", 0) + totals.get("release", 0))

    print(f"paid p95 ratio 10x/1x: {ratio:.2f} (goal <= 2)")
    print(
        "machine CPU in use while the load ran: "
        + ", ".join(f"{level}x {share:.0%}" for level, share in busy_share.items())
    )
    print(f"free acceptance at 10x (first attempt): {free_accept:.2f}")
    print(
        f"retries accepted: {retry_success:.2f} of {len(retried)} (goal >= 0.8); "
        f"{gave_up} clients told to wait over {MAX_RETRY_AFTER} s gave up"
    )
    print(f"Jain's index across {FREE_WORKSPACES} free workspaces at 10x: {fairness:.3f}")
    for kind in ("free", "paid", "flood"):
        answers = Counter(o.retry_status for o in retried if o.kind == kind)
        print(f"retries of {kind} requests by answer: {dict(sorted(answers.items()))}")
    dropped = sum(o.first_status == 0 or (o.retried and o.retry_status == 0) for o in outcomes)
    print(f"admitted {len(admitted)}, succeeded {succeeded}, lost {lost} (must be 0)")
    print(f"requests without an answer (connection dropped): {dropped}")
    for error, count in Counter(e for o in outcomes for e in o.errors).most_common():
        print(f"  {count} x {error}")  # a reused keep-alive connection the server closed idle?
    paid = " ".join(
        f"paid_p{round(q * 100)}_{level}x={percentile(waits[level], q):.2f}"
        for level in (1, 10)
        for q in (0.5, 0.95, 0.99)
    )
    print(
        f"RESULT paid_p95_ratio_10x={ratio:.2f} {paid} free_accept_10x={free_accept:.2f} "
        f"retry_success={retry_success:.2f} jain={fairness:.3f} lost={lost}"
    )


if __name__ == "__main__":
    main()
