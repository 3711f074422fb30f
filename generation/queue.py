"""The fair queue: the order queued jobs run in, where a job stands, how long a new one waits.

Over 300 lines: the invariants below hold across stamping, flows, claims, places and their
repair, so those live in one module, read beside the invariants they keep.

Weighted fair queuing across workspaces, in virtual time; each workspace is a *flow*.

Tags. When a job is admitted it is stamped, once, with a virtual finish tag

    start  = max(V, the workspace's last finish tag)
    finish = start + images x TAG_SCALE / weight        (weight: priority 8, standard 3, free 1)

and an admission number, `queue_seq`, that breaks ties. Workers run queued jobs in
(finish_tag, queue_seq) order, passing over workspaces at their plan's in-flight cap. V,
the queue's virtual time, is the service front in start tags (QueueClock), as in start-time
fair queuing (Goyal, Vin and Cheng, 1996) and WF2Q+ (Bennett and Zhang, 1997): each claim
moves it up to the smallest start tag among the jobs it started and the first eligible job
of each lane, so that it follows the jobs being served even when some workers serve only
some lanes. So a workspace that had nothing queued comes back where the jobs being served
start and, with a paid weight, finishes an eighth of a turn later: before the next jobs of
backlogged free workspaces, which start where their last ones finished, at V or past it,
and finish a whole turn after that, however many of them wait. (Self-clocked fair
queuing's V, the finish-tag front, would put it behind every free job that finishes
within that eighth; tests/generation/test_fair_queue.py holds the difference.)
So a paid job goes before a free one admitted at the same V; a workspace flooding the
queue gets 8 turns (priority) for each free workspace's one, never all of them; and a
workspace that was idle comes back at V, having neither banked service nor run up a debt.
Tags are whole numbers: TAG_SCALE is divisible by every weight up to 16, so equal shares
compare equal, and a job's start tag is its finish tag less its cost, exactly.

Structures.
- Job.finish_tag and Job.queue_seq, with two partial indexes over queued jobs: by workspace
  in tag order (job_queued_by_workspace) and in tag order (job_queued_in_fair_order), and
  one over running jobs by workspace.
- QueueFlow, one row per workspace: its head (the tag, number, lane and in-flight cap of its
  first queued job), its running jobs and its last finish tag, with a partial index over the
  flows a worker may take from (something queued, room under the cap) per lane in head order.
- QueueClock: V, one row.
- The place index, in Redis: two sorted sets scored by finish tag, whose members are the
  zero-padded admission numbers (Redis orders equal scores by member, so by queue_seq): one
  member per queued job, one per queued image. A job's place is its ZRANK and what runs
  before a new job is a ZCOUNT up to the tag it would get: O(log n) both.

Costs. A claim reads the k best eligible flows across its lanes (an index range scan per
lane, LIMIT k, merged in order), then up to `room` jobs of each, none past the k-th flow's
head (an index range scan per flow): O(k log n) and about k jobs read, whatever the depth of
the queue, the workspaces' backlogs or the number of workspaces waiting at their cap, which
are not in the flows' index. Admission stamps a job with one upsert of its flow row. A
place or a wait estimate is one primary-key read and one Redis round trip. Nothing counts
over the queue.

Invariants.
1. A queued job's (finish_tag, queue_seq) never changes and no two jobs share a queue_seq:
   the order of queued jobs is total, and claiming, cancelling or requeueing one job never
   reorders the others (a requeued job keeps its tag, so it runs next).
2. For each workspace with queued or running jobs, its QueueFlow row says: head = its first
   queued job in (finish_tag, queue_seq) order (NULL when none is queued); running = its
   running jobs; last_finish >= the finish tag of each of its queued jobs.
3. Every transaction that changes which of a workspace's jobs are queued or running first
   locks the workspace's flow row (several: in workspace id order), then changes the jobs,
   then derives the flow again from them (`flows_held`); admission locks it with its upsert.
   So (2) holds at every commit, two claims never run a workspace past its cap between them,
   and claims, which lock flows with SKIP LOCKED, never wait.
4. V never decreases; a claim moves it no further than the start tag of the first job a
   worker could take in any lane.
5. The database is the truth; the Redis place index is derived from it. Services write it
   after their last refusal, inside their transaction (so a test's transaction sees it), so
   only a failed commit can leave it wrong; reading a job's place puts back a missing
   entry, and the sweeper reconciles the index with the database when its size strays
   (`queue_index_check`).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from config.sql import column_list, model_rows
from generation.models import Job

logger = logging.getLogger(__name__)

TAG_SCALE = 720_720  # lcm(1..16): images x TAG_SCALE / weight is whole for weights up to 16
JOBS_KEY = "atelier:queue:jobs"
IMAGES_KEY = "atelier:queue:images"
SECONDS_PER_IMAGE_KEY = "atelier:throughput:seconds_per_image"
SECONDS_PER_BATCH_KEY = "atelier:throughput:seconds_per_batch"
WORKERS_KEY = "atelier:throughput:workers"  # live workers, scored by their last report
_CHECKED_KEY = "atelier:queue:index-checked"
_CHECK_INTERVAL = 60  # seconds between the sweeper's checks of the place index


_client: redis.Redis | None = None
_client_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """The process's one client, shared by its threads (redis-py's pool is thread-safe).

    Made under a lock: a second client made by a racing thread would be dropped, and
    redis-py closes a dropped client's pool, with the connection another thread is using.
    """
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


def lane_workers_key(lane: str) -> str:
    """The live workers that serve `lane` (a worker serving several is in each)."""
    return f"{WORKERS_KEY}:{lane}"


def tag_cost(*, images: int, weight: int) -> int:
    """How far a job moves its workspace's finish tag: its images over its lane's weight."""
    return images * TAG_SCALE // max(weight, 1)


# Admission: stamping a job

# One statement: read V, take an admission number, move the flow's last finish tag (the
# flow row is created or locked), and make the job the flow's head when nothing else waits.
_STAMP_SQL = """
    INSERT INTO generation_queueflow AS flow
        (workspace_id, last_finish, last_seq, head_finish, head_seq, head_lane, max_in_flight,
         running)
    SELECT %(workspace)s, now.vtime + %(cost)s, now.seq, now.vtime + %(cost)s, now.seq,
           %(lane)s, %(cap)s, 0
    FROM (
        SELECT COALESCE((SELECT vtime FROM generation_queueclock WHERE id = 1), 0) AS vtime,
               nextval('generation_job_queue_seq') AS seq
    ) AS now
    ON CONFLICT (workspace_id) DO UPDATE SET
        last_finish = GREATEST(flow.last_finish + %(cost)s, EXCLUDED.last_finish),
        last_seq = EXCLUDED.last_seq,
        head_finish = COALESCE(
            flow.head_finish, GREATEST(flow.last_finish + %(cost)s, EXCLUDED.last_finish)
        ),
        head_seq = COALESCE(flow.head_seq, EXCLUDED.last_seq),
        head_lane = CASE WHEN flow.head_finish IS NULL THEN EXCLUDED.head_lane
                         ELSE flow.head_lane END,
        max_in_flight = CASE WHEN flow.head_finish IS NULL THEN EXCLUDED.max_in_flight
                             ELSE flow.max_in_flight END
    RETURNING last_finish, last_seq
"""


def job_stamp(job: Job) -> None:
    """Give a job that is about to be inserted its finish tag and admission number.

    Call it in the transaction that inserts the job: it locks the workspace's flow row until
    that transaction ends, and rolls back with it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _STAMP_SQL,
            {
                "workspace": job.workspace_id,
                "cost": tag_cost(images=job.num_images, weight=job.dispatch_weight),
                "lane": job.lane,
                "cap": job.max_in_flight,
            },
        )
        job.finish_tag, job.queue_seq = cursor.fetchone()


# The place index (Redis)


def index_member(seq: int) -> str:
    return f"{seq:013d}"  # fixed width: Redis orders equal scores by member, as text


def _image_members(seq: int, images: int) -> list[str]:
    return [f"{index_member(seq)}:{index}" for index in range(images)]


def queue_index_add(jobs: Iterable[Job]) -> None:
    """Enter queued jobs into the place index (they keep the tags they were stamped with)."""
    pipe = redis_client().pipeline(transaction=False)
    for job in jobs:
        pipe.zadd(JOBS_KEY, {index_member(job.queue_seq): job.finish_tag})
        members = _image_members(job.queue_seq, job.num_images)
        pipe.zadd(IMAGES_KEY, dict.fromkeys(members, job.finish_tag))
    _index_write(pipe)


def queue_index_remove(jobs: Iterable[Job]) -> None:
    """Take jobs that are no longer queued out of the place index."""
    pipe = redis_client().pipeline(transaction=False)
    for job in jobs:
        pipe.zrem(JOBS_KEY, index_member(job.queue_seq))
        pipe.zrem(IMAGES_KEY, *_image_members(job.queue_seq, job.num_images))
    _index_write(pipe)


def _index_write(pipe: redis.client.Pipeline) -> None:
    # The index is derived from the database: a write lost while Redis is away must not fail
    # a job's state change (a worker settling a batch). Places read puts back a missing
    # entry, and the sweeper rebuilds the index when its size drifts from the database's.
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("Place index not updated (Redis unreachable); the sweeper repairs it")


def queue_length() -> int:
    """Queued jobs, all lanes (from the place index: O(1))."""
    return int(redis_client().zcard(JOBS_KEY))


# Flows: deriving them from the jobs, under their locks

# The flows' locks. The rest of the transaction runs on generic plans (set_config, with the
# first row): PostgreSQL planned _FLOWS_REFRESH_SQL afresh on every settle and cancel
# otherwise, 1.8 ms where its prepared plan runs in 0.9 (see _LOCK_FLOWS_SKIP_SQL). What
# follows it in a transaction must be a lookup by key, as everything that does now is.
_FLOWS_LOCK_SQL = """
    SELECT workspace_id, set_config('plan_cache_mode', 'force_generic_plan', true)
    FROM generation_queueflow
    WHERE workspace_id = ANY(%(workspaces)s) ORDER BY workspace_id FOR UPDATE
"""

# Each flow from its jobs: two index probes and a count of at most its running jobs. When
# nothing is queued its last finish tag falls back to V at most, so jobs it had queued and
# then cancelled do not push its next job back.
_FLOWS_REFRESH_SQL = """
    WITH derived AS (
        SELECT flow.workspace_id, head.id AS head_id, head.finish_tag AS head_finish,
               head.queue_seq AS head_seq, head.lane AS head_lane,
               head.max_in_flight AS head_cap, tail.finish_tag AS tail_finish,
               (SELECT COUNT(*) FROM generation_job AS job
                WHERE job.workspace_id = flow.workspace_id AND job.status = 'running'
               ) AS running
        FROM generation_queueflow AS flow
        LEFT JOIN LATERAL (
            SELECT id, finish_tag, queue_seq, lane, max_in_flight FROM generation_job
            WHERE workspace_id = flow.workspace_id AND status = 'queued'
            ORDER BY finish_tag, queue_seq LIMIT 1
        ) AS head ON TRUE
        LEFT JOIN LATERAL (
            SELECT finish_tag FROM generation_job
            WHERE workspace_id = flow.workspace_id AND status = 'queued'
            ORDER BY finish_tag DESC, queue_seq DESC LIMIT 1
        ) AS tail ON TRUE
        WHERE flow.workspace_id = ANY(%(workspaces)s)
    )
    UPDATE generation_queueflow AS flow SET
        running = derived.running,
        head_finish = derived.head_finish,
        head_seq = derived.head_seq,
        head_lane = COALESCE(derived.head_lane, ''),
        max_in_flight = COALESCE(derived.head_cap, flow.max_in_flight),
        last_finish = COALESCE(
            derived.tail_finish,
            LEAST(flow.last_finish,
                  COALESCE((SELECT vtime FROM generation_queueclock WHERE id = 1), 0))
        )
    FROM derived WHERE flow.workspace_id = derived.workspace_id
    RETURNING flow.workspace_id, derived.head_id, derived.head_lane
"""


@dataclass(frozen=True)
class FlowHead:
    workspace_id: Any
    job_id: Any  # its first queued job; None when nothing is queued
    lane: str | None


def flows_refresh(workspace_ids: Iterable[Any]) -> list[FlowHead]:
    """Derive these workspaces' flows from their jobs again. The caller holds their locks
    (flows_held), so the statement sees every change committed before."""
    with connection.cursor() as cursor:
        cursor.execute(_FLOWS_REFRESH_SQL, {"workspaces": list(workspace_ids)})
        return [FlowHead(*row) for row in cursor.fetchall()]


@contextmanager
def flows_held(workspace_ids: Iterable[Any]) -> Iterator[None]:
    """Lock the workspaces' flows for a change to their jobs' status in the block; derive
    them again after it, in the same transaction (invariant 3). The transaction's statements
    from here on run on generic plans (_FLOWS_LOCK_SQL)."""
    ids = list(set(workspace_ids))
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(_FLOWS_LOCK_SQL, {"workspaces": ids})
        yield
        flows_refresh(ids)


def flows_wake(workspace_ids: Iterable[Any]) -> list[FlowHead]:
    """Derive the flows again (under their locks) and return the heads of those with queued
    jobs. Run when a workspace's running jobs end: it also puts right a running count that a
    change outside the services (an update by hand) left behind."""
    ids = list(set(workspace_ids))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_FLOWS_LOCK_SQL, {"workspaces": ids})
        heads = flows_refresh(ids)
    return [head for head in heads if head.job_id is not None]


# Claims

# The k best flows across the worker's lanes that may run another job (each lane's flows
# by an index range scan with a LIMIT, merged in order: a Merge Append, nothing sorted),
# then up to `room` queued jobs of each in tag order, never more than k, and none past the
# k-th flow's head: those k heads come first, so no job after them is among the k best.
# So a claim reads about k jobs, whatever the backlogs; the final merge is left to Python.
_FLOW_ARM_SQL = """
    (SELECT workspace_id, max_in_flight - running AS room, head_finish, head_seq
     FROM generation_queueflow
     WHERE head_lane = (%(lanes)s::varchar[])[{n}] AND head_finish IS NOT NULL
       AND running < max_in_flight
     ORDER BY head_finish, head_seq
     LIMIT %(flows)s)
"""
_CANDIDATES_SQL = """
    WITH flow AS MATERIALIZED (
        SELECT * FROM ({arms}) AS best
        ORDER BY head_finish, head_seq
        LIMIT %(flows)s
    ), bound AS (
        SELECT MAX(head_finish) AS finish FROM flow HAVING COUNT(*) = %(flows)s
    )
    SELECT job.id, job.workspace_id, job.finish_tag, job.queue_seq, job.num_images, job.lane,
           flow.room, job.model, job.kind, job.width, job.height, job.steps, job.guidance,
           job.strength, job.masked
    FROM flow CROSS JOIN LATERAL (
        SELECT id, workspace_id, finish_tag, queue_seq, num_images, lane, model, kind, width,
               height, steps, guidance, strength, mask_image <> '' AS masked
        FROM generation_job
        WHERE workspace_id = flow.workspace_id AND status = 'queued'
          AND finish_tag <= COALESCE((SELECT finish FROM bound), 9223372036854775807)
        ORDER BY finish_tag, queue_seq
        LIMIT LEAST(flow.room, %(flows)s)
    ) AS job
"""


@functools.cache
def claim_candidates_sql(lanes: int) -> str:
    """The candidates' statement for a worker serving `lanes` lanes (one arm each)."""
    arms = " UNION ALL ".join(_FLOW_ARM_SQL.format(n=n) for n in range(1, lanes + 1))
    return _CANDIDATES_SQL.format(arms=arms)


# The chosen flows, locked (SKIP LOCKED) with their room. Two settings for the rest of the
# claim's transaction ride along in the same round trip (set_config, evaluated with the first
# row; a claim that locks no flow starts nothing, and its commit writes nothing):
# - synchronous_commit off: the commit does not wait for its flush (see job_claim_batch);
# - plan_cache_mode force_generic_plan: _START_SQL runs on the plan its connection prepared
#   once (psycopg prepares what a connection runs DB_PREPARE_THRESHOLD times). Left to
#   choose, PostgreSQL planned it afresh for every claim (its custom plans looked cheaper):
#   4.2 ms a start where the generic plan takes 1.8 at 20,000 queued jobs, 5.2 and 2.4 at a
#   million. That plan reads the same indexes (tests/generation/test_fair_queue_at_depth.py).
_LOCK_FLOWS_SKIP_SQL = """
    SELECT workspace_id, max_in_flight - running,
           set_config('synchronous_commit', 'off', true),
           set_config('plan_cache_mode', 'force_generic_plan', true)
    FROM generation_queueflow
    WHERE workspace_id = ANY(%(workspaces)s) ORDER BY workspace_id FOR UPDATE SKIP LOCKED
"""

# One statement, under the flows' locks: start the jobs (SKIP LOCKED), advance V to the
# service front (the smallest start tag started, or that of the first eligible job of any
# lane if that is earlier: a worker serving only the priority lane must not drag V past the
# free jobs the others are still working through), and derive the flows again. A job's
# start tag is its finish tag less its cost (exact: tags are whole numbers). Its reads see the
# jobs as they were before the statement, so the started ones are counted as running and
# left out of the heads by hand (the same derivation as _FLOWS_REFRESH_SQL).
_COST_SQL = f"{{job}}.num_images * {TAG_SCALE} / GREATEST({{job}}.dispatch_weight, 1)"  # tag_cost
_START_SQL = f"""
    WITH started AS (
        UPDATE generation_job SET status = 'running', started_at = %(now)s,
            heartbeat_at = %(now)s, worker = %(worker)s, attempts = attempts + 1,
            progress = 0.0
        WHERE id IN (
            SELECT id FROM generation_job WHERE id = ANY(%(jobs)s) AND status = 'queued'
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {column_list(Job)}
    ), front AS (
        -- The first eligible job of every lane, whichever lanes this worker serves.
        SELECT MIN(head.finish_tag - {_COST_SQL.format(job="head")}) AS start
        FROM unnest(%(all_lanes)s::varchar[]) AS lane(name)
        CROSS JOIN LATERAL (
            SELECT workspace_id, head_finish, head_seq FROM generation_queueflow
            WHERE head_lane = lane.name AND head_finish IS NOT NULL
              AND running < max_in_flight
            ORDER BY head_finish, head_seq
            LIMIT 1
        ) AS first
        JOIN generation_job AS head
          ON head.workspace_id = first.workspace_id AND head.status = 'queued'
         AND head.finish_tag = first.head_finish AND head.queue_seq = first.head_seq
    ), clock AS (
        INSERT INTO generation_queueclock (id, vtime)
        SELECT 1, LEAST(
            MIN(started.finish_tag - {_COST_SQL.format(job="started")}),
            (SELECT start FROM front)
        )
        FROM started HAVING COUNT(*) > 0
        ON CONFLICT (id) DO UPDATE
        SET vtime = GREATEST(generation_queueclock.vtime, EXCLUDED.vtime)
        RETURNING vtime
    ), derived AS (
        SELECT flow.workspace_id, head.finish_tag AS head_finish, head.queue_seq AS head_seq,
               head.lane AS head_lane, head.max_in_flight AS head_cap,
               tail.finish_tag AS tail_finish,
               (SELECT COUNT(*) FROM generation_job AS job
                WHERE job.workspace_id = flow.workspace_id AND job.status = 'running')
               + (SELECT COUNT(*) FROM started WHERE started.workspace_id = flow.workspace_id)
               AS running
        FROM generation_queueflow AS flow
        LEFT JOIN LATERAL (
            SELECT finish_tag, queue_seq, lane, max_in_flight FROM generation_job
            WHERE workspace_id = flow.workspace_id AND status = 'queued'
              AND id NOT IN (SELECT id FROM started)
            ORDER BY finish_tag, queue_seq LIMIT 1
        ) AS head ON TRUE
        LEFT JOIN LATERAL (
            SELECT finish_tag FROM generation_job
            WHERE workspace_id = flow.workspace_id AND status = 'queued'
              AND id NOT IN (SELECT id FROM started)
            ORDER BY finish_tag DESC, queue_seq DESC LIMIT 1
        ) AS tail ON TRUE
        WHERE flow.workspace_id IN (SELECT workspace_id FROM started)
    ), flows AS (
        UPDATE generation_queueflow AS flow SET
            running = derived.running,
            head_finish = derived.head_finish,
            head_seq = derived.head_seq,
            head_lane = COALESCE(derived.head_lane, ''),
            max_in_flight = COALESCE(derived.head_cap, flow.max_in_flight),
            last_finish = COALESCE(
                derived.tail_finish, LEAST(flow.last_finish, (SELECT vtime FROM clock))
            )
        FROM derived WHERE flow.workspace_id = derived.workspace_id
    )
    SELECT * FROM started
"""  # noqa: S608 (composed of constants: the job's column names)


_LANE_WITH_WORK_SQL = """
    SELECT head_lane FROM generation_queueflow
    WHERE head_lane = ANY(%(lanes)s::varchar[]) AND head_finish IS NOT NULL
      AND running < max_in_flight
    LIMIT 1
"""


def lane_with_work(lanes: list[str]) -> str | None:
    """One of `lanes` where a worker may take a job now (a flow with room has its head
    there), or None: an index lookup on queueflow_eligible."""
    with connection.cursor() as cursor:
        cursor.execute(_LANE_WITH_WORK_SQL, {"lanes": lanes})
        row = cursor.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class Candidate:
    id: Any
    workspace_id: Any
    finish_tag: int
    queue_seq: int
    num_images: int
    lane: str
    room: int  # more jobs its workspace may run now, under its plan's in-flight cap
    batch_key: tuple[object, ...]  # as Job.batch_key: equal keys run in one pipeline call


def fair_candidates(*, lanes: list[str], limit: int) -> list[Candidate]:
    """Up to `limit` queued jobs of `lanes` that may run now, in the order they should."""
    with connection.cursor() as cursor:
        cursor.execute(claim_candidates_sql(len(lanes)), {"lanes": lanes, "flows": limit})
        rows = cursor.fetchall()
    rows.sort(key=lambda row: (row[2], row[3]))
    candidates: list[Candidate] = []
    blocked: set[Any] = set()
    for row in rows:
        if row[1] in blocked:
            continue
        if row[5] not in lanes:
            # A workspace's jobs run in its own order: one in a lane this worker does not
            # serve holds back those behind it.
            blocked.add(row[1])
            continue
        job_id, workspace_id, finish_tag, queue_seq, num_images, lane, room, *batch_key = row
        candidates.append(
            Candidate(
                id=job_id,
                workspace_id=workspace_id,
                finish_tag=finish_tag,
                queue_seq=queue_seq,
                num_images=num_images,
                lane=lane,
                room=room,
                batch_key=tuple(batch_key),
            )
        )
    return candidates[:limit]


def _batch_pick(candidates: list[Candidate], max_images: int) -> list[Candidate]:
    """The first candidate and those after it that can share its pipeline call, up to
    `max_images`, within each workspace's room."""
    batch: list[Candidate] = []
    images = 0
    taken: Counter[Any] = Counter()
    for candidate in candidates:
        if batch and candidate.batch_key != batch[0].batch_key:
            continue
        if batch and images + candidate.num_images > max_images:
            continue
        if taken[candidate.workspace_id] >= candidate.room:
            continue
        batch.append(candidate)
        images += candidate.num_images
        taken[candidate.workspace_id] += 1
    return batch


def job_claim_batch(*, worker: str, lanes: list[str], max_images: int) -> list[Job]:
    """Claim the next job in fair order and compatible ones after it, up to `max_images`.

    The flows of the chosen jobs are locked with SKIP LOCKED and their room is checked again
    under the lock; the jobs are taken with SKIP LOCKED. So workers racing for the same jobs
    never share one, and never run a workspace past its in-flight cap between them.
    """
    limit = max(4 * max_images, 32)
    for _ in range(3):  # another worker may take the candidates between the two steps
        candidates = fair_candidates(lanes=lanes, limit=limit)
        if not candidates:
            return []
        batch = _batch_pick(candidates, max_images)
        with transaction.atomic(), connection.cursor() as cursor:
            # A claim need not wait for its commit to reach the disk: if the database
            # crashes first, the jobs are queued again on recovery, and the worker's settle
            # (UPDATE ... WHERE worker = me AND status = 'running') finds them no longer its
            # own and discards its images. Nothing is charged or lost; a GPU waits less.
            cursor.execute(
                _LOCK_FLOWS_SKIP_SQL, {"workspaces": list({c.workspace_id for c in batch})}
            )
            room = {workspace_id: room for workspace_id, room, *_ in cursor.fetchall()}
            taken: Counter[Any] = Counter()
            chosen = []
            for candidate in batch:
                if taken[candidate.workspace_id] < room.get(candidate.workspace_id, 0):
                    chosen.append(candidate.id)
                    taken[candidate.workspace_id] += 1
            if not chosen:
                continue
            params = {
                "jobs": chosen,
                "worker": worker,
                "now": timezone.now(),
                "all_lanes": list(settings.LANE_WEIGHTS),
            }
            started = model_rows(Job, _START_SQL, params)
            if not started:
                continue
            queue_index_remove(started)
        return sorted(started, key=lambda job: job.created_at)
    return []


# Places and wait estimates


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: runs next
    images_ahead: int
    wait_seconds: float


@dataclass(frozen=True)
class LaneEstimate:
    lane: str
    queued_images: int
    wait_seconds: float


def _with_rate_reads(pipe: redis.client.Pipeline, lane: str | None = None) -> redis.client.Pipeline:
    """Add the reads `_rate` needs (seconds per image, live workers, those serving `lane`
    when given) to a pipeline."""
    since = time.time() - settings.WORKER_ALIVE_TIMEOUT
    pipe.get(SECONDS_PER_IMAGE_KEY)
    pipe.zcount(lane_workers_key(lane) if lane else WORKERS_KEY, since, "+inf")
    return pipe


def _rate(per_image: bytes | None, workers: int) -> float:
    """Images per second the live workers make (at least one worker is assumed)."""
    seconds = float(per_image) if per_image is not None else settings.DEFAULT_SECONDS_PER_IMAGE
    return max(int(workers), 1) / seconds


# A queued job's tag, sequence, images and lane (the jobs' primary key finds it).
_PLACE_SQL = f"""
    SELECT finish_tag, queue_seq, num_images, lane FROM {Job._meta.db_table}
    WHERE id = %(job)s AND status = %(queued)s
"""  # noqa: S608 (composed of constants)


def job_queue_place(job: Job) -> QueuePlace | None:
    """Where a queued job stands, and roughly when it starts. None once it is not queued."""
    with connection.cursor() as cursor:
        cursor.execute(_PLACE_SQL, {"job": job.pk, "queued": Job.Status.QUEUED})
        row = cursor.fetchone()
    if row is None:
        return None
    finish, seq, images, lane = row
    member = index_member(seq)
    pipe = redis_client().pipeline(transaction=False)
    # Put back an entry a failed commit elsewhere (or a lost Redis) left out: a no-op else.
    pipe.zadd(JOBS_KEY, {member: finish}, nx=True)
    pipe.zadd(IMAGES_KEY, dict.fromkeys(_image_members(seq, images), finish), nx=True)
    pipe.zrank(JOBS_KEY, member)
    pipe.zrank(IMAGES_KEY, f"{member}:0")
    *_, jobs_ahead, images_ahead, per_image, workers = _with_rate_reads(pipe, lane).execute()
    wait = images_ahead / _rate(per_image, workers)
    return QueuePlace(jobs_ahead + 1, images_ahead, wait)


NEXT_START_SQL = """
    SELECT COALESCE((SELECT vtime FROM generation_queueclock WHERE id = 1), 0),
           COALESCE((SELECT last_finish FROM generation_queueflow
                     WHERE workspace_id = %(workspace)s), 0)
"""


@dataclass(frozen=True)
class Ahead:
    """What runs before a new job: queued jobs and images whose finish tag is no later than
    the one it would get, and of those images, how many are its own workspace's."""

    jobs: int
    images: int
    own_images: int


def new_job_ahead(*, lane: str, workspace: Workspace | None = None, images: int = 1) -> Ahead:
    """What runs before a new job of `workspace` in `lane` (None: a workspace with nothing
    queued)."""
    query = NewJobAhead.read(lane=lane, workspace=workspace, images=images)
    pipe = redis_client().pipeline(transaction=False)
    query.queue(pipe)
    return query.result(*pipe.execute())


@dataclass(frozen=True)
class NewJobAhead:
    """new_job_ahead in two halves: the tag a new job would get (from PostgreSQL), then what
    the index counts up to it, read in a pipeline of the caller's (admission adds its own
    reads to the same round trip). Its own images are those its flow's tags run past V:
    (last finish - V) x weight / TAG_SCALE (its jobs' tags are consecutive from where each
    started)."""

    finish: int
    own_images: int

    @classmethod
    def read(cls, *, lane: str, workspace: Workspace | None, images: int) -> NewJobAhead:
        with connection.cursor() as cursor:
            cursor.execute(NEXT_START_SQL, {"workspace": workspace.pk if workspace else None})
            vtime, last_finish = cursor.fetchone()
        weight = settings.LANE_WEIGHTS.get(lane, 1)
        finish = max(vtime, last_finish) + tag_cost(images=images, weight=weight)
        return cls(finish, max(last_finish - vtime, 0) * weight // TAG_SCALE)

    def queue(self, pipe: redis.client.Pipeline) -> None:
        pipe.zcount(JOBS_KEY, "-inf", self.finish)
        pipe.zcount(IMAGES_KEY, "-inf", self.finish)

    def result(self, jobs: int, images: int) -> Ahead:
        return Ahead(int(jobs), int(images), min(self.own_images, int(images)))


def ahead_of_new(
    *, lane: str, workspace: Workspace | None = None, images: int = 1
) -> tuple[int, int]:
    """(jobs, images) queued that run before a new job of `workspace` in `lane`."""
    ahead = new_job_ahead(lane=lane, workspace=workspace, images=images)
    return ahead.jobs, ahead.images


def capped_wait(
    *, own_images: int, images: int, cap: int, workers: int, per_image: float,
    per_batch: float | None,
) -> float:  # fmt: skip
    """The least a new job waits behind its own workspace's queued jobs: those run at most
    `cap` at a time (the plan's in-flight cap, or the lane's workers if fewer), each for
    about one batch (the workers' measured batch time; its own images' time before any
    batch was measured). Counted in jobs of the new one's size."""
    if own_images <= 0:
        return 0.0
    jobs = math.ceil(own_images / max(images, 1))
    per_job = per_batch if per_batch else per_image * images
    return jobs * per_job / max(min(cap, workers), 1)


def images_ahead(*, lane: str, workspace: Workspace | None = None) -> int:
    """Images that run before a new job of `workspace` (None: one with nothing queued)."""
    return ahead_of_new(lane=lane, workspace=workspace)[1]


def lane_wait_estimate(lane: str) -> LaneEstimate:
    """Seconds a new workspace's job in `lane` would wait, at the rate of the live workers
    that serve the lane."""
    ahead = images_ahead(lane=lane)
    return LaneEstimate(
        lane=lane, queued_images=ahead, wait_seconds=estimated_wait(ahead, lane=lane)
    )


# Throughput, measured by the workers: what turns images ahead into seconds


def throughput_record(*, images: int, seconds: float) -> None:
    """A worker finished a batch of `images` in `seconds` of GPU time: exponentially
    weighted means of the seconds per image and per batch."""
    if images <= 0:
        return
    client = redis_client()
    alpha = settings.THROUGHPUT_SMOOTHING
    current = client.mget(SECONDS_PER_IMAGE_KEY, SECONDS_PER_BATCH_KEY)
    means = {}
    for key, sample, mean in zip(
        (SECONDS_PER_IMAGE_KEY, SECONDS_PER_BATCH_KEY), (seconds / images, seconds), current,
        strict=True,
    ):  # fmt: skip
        means[key] = sample if mean is None else alpha * sample + (1 - alpha) * float(mean)
    client.mset(means)


def worker_alive(worker: str, lanes: Iterable[str] = ()) -> None:
    """Report `worker` alive, counted in the live workers and in those of each of `lanes`."""
    now = time.time()
    pipe = redis_client().pipeline(transaction=False)
    for key in (WORKERS_KEY, *(lane_workers_key(lane) for lane in lanes)):
        pipe.zadd(key, {worker: now})
        pipe.zremrangebyscore(key, 0, now - settings.WORKER_ALIVE_TIMEOUT)
    pipe.execute()


def worker_last_seen(worker_prefix: str) -> float | None:
    """When a worker whose id starts with `worker_prefix` (a host name and ":") last
    reported alive, as a Unix time; None if none ever did (or long ago)."""
    entries: list[tuple[bytes, float]] = redis_client().zrange(  # type: ignore[assignment]
        WORKERS_KEY, 0, -1, withscores=True
    )
    seen = [score for member, score in entries if member.decode().startswith(worker_prefix)]
    return max(seen) if seen else None


def lane_live_workers(lanes: Iterable[str]) -> dict[str, int]:
    """Live workers serving each lane (one Redis round trip)."""
    since = time.time() - settings.WORKER_ALIVE_TIMEOUT
    lanes = list(lanes)
    pipe = redis_client().pipeline(transaction=False)
    for lane in lanes:
        pipe.zcount(lane_workers_key(lane), since, "+inf")
    return {lane: int(count) for lane, count in zip(lanes, pipe.execute(), strict=True)}


_OLDEST_QUEUED_SQL = """
    SELECT lane.name, (SELECT min(created_at) FROM generation_job
                       WHERE status = 'queued' AND lane = lane.name)
    FROM unnest(%(lanes)s::varchar[]) AS lane(name)
"""


def lane_oldest_queued(lanes: Iterable[str]) -> dict[str, Any]:
    """When the oldest queued job of each lane was admitted (None: nothing queued). One
    index seek per lane on (status, lane, created_at): O(log n) at any depth."""
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_QUEUED_SQL, {"lanes": list(lanes)})
        return dict(cursor.fetchall())


def live_workers(lane: str | None = None) -> int:
    """Workers that reported alive lately; those serving `lane` when given."""
    since = time.time() - settings.WORKER_ALIVE_TIMEOUT
    key = lane_workers_key(lane) if lane else WORKERS_KEY
    return int(redis_client().zcount(key, since, "+inf"))


def seconds_per_image() -> float:
    value = redis_client().get(SECONDS_PER_IMAGE_KEY)
    return float(value) if value is not None else settings.DEFAULT_SECONDS_PER_IMAGE


def measured_seconds_per_image() -> float | None:
    """The workers' measured seconds per image; None before any batch was measured."""
    value = redis_client().get(SECONDS_PER_IMAGE_KEY)
    return float(value) if value is not None else None


def estimated_wait(images_ahead: int, lane: str | None = None) -> float:
    """Seconds for `images_ahead` at the rate of the live workers (those serving `lane`)."""
    return images_ahead * seconds_per_image() / max(live_workers(lane), 1)


def batch_image_limit(batch_size: int, batch_seconds: float) -> int:
    """Images a worker takes in one batch: `batch_size`, or fewer when the measured time per
    image says a batch that size would hold the worker past `batch_seconds`. A paid job that
    arrives just after a long free batch started thus waits for a worker at most about that
    long. No bound before anything was measured, or when `batch_seconds` is 0."""
    per_image = measured_seconds_per_image() if batch_seconds > 0 else None
    if not per_image:
        return batch_size
    return max(1, min(batch_size, math.floor(batch_seconds / per_image)))


# Keeping the derived structures right


_QUEUED_PAGE_SQL = """
    SELECT finish_tag, queue_seq, num_images FROM generation_job
    WHERE status = 'queued' AND (finish_tag, queue_seq) > (%(finish)s, %(seq)s)
    ORDER BY finish_tag, queue_seq LIMIT %(limit)s
"""

_STILL_QUEUED_SQL = """
    SELECT finish_tag, queue_seq FROM generation_job
    WHERE status = 'queued' AND (finish_tag, queue_seq) IN (
        SELECT * FROM unnest(%(finishes)s::bigint[], %(seqs)s::bigint[])
    )
"""


def queue_index_reconcile(*, chunk: int = 10_000) -> tuple[int, int]:
    """Make the place index hold the queued jobs: add those missing, remove those no longer
    queued. O(n) in the queue's depth, in pages: the sweeper runs it when the index's size
    strays from the database's (queue_index_check), and after the queue was filled by hand.
    Returns (entries added, entries removed)."""
    client = redis_client()
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM generation_job_queue_seq")
        newest = cursor.fetchone()[0]  # jobs admitted while this runs are left alone
    added = removed = 0
    # Those no longer queued first: on an empty index (Redis lost it) this costs nothing.
    for key in (JOBS_KEY, IMAGES_KEY):
        start = 0
        while entries := client.zrange(key, start, start + chunk - 1, withscores=True):
            members: list[tuple[bytes, float]] = list(entries)  # type: ignore[arg-type]
            tags = [(int(score), int(member.split(b":")[0])) for member, score in members]
            with connection.cursor() as cursor:
                cursor.execute(
                    _STILL_QUEUED_SQL,
                    {"finishes": [tag[0] for tag in tags], "seqs": [tag[1] for tag in tags]},
                )
                queued = set(cursor.fetchall())
            gone = [
                member
                for (member, _), tag in zip(members, tags, strict=True)
                if tag not in queued and tag[1] <= newest
            ]
            if gone:
                removed += client.zrem(key, *gone)
            start += len(entries) - len(gone)
    after = (-1, -1)
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_QUEUED_PAGE_SQL, {"finish": after[0], "seq": after[1], "limit": chunk})
            rows = cursor.fetchall()
        if not rows:
            break
        jobs = {index_member(seq): finish for finish, seq, _ in rows}
        pictures = {
            member: finish for finish, seq, images in rows for member in _image_members(seq, images)
        }
        pipe = client.pipeline(transaction=False)
        pipe.zadd(JOBS_KEY, jobs, nx=True)
        pipe.zadd(IMAGES_KEY, pictures, nx=True)
        added += sum(pipe.execute())
        after = rows[-1][:2]
    return added, removed


def queue_index_check() -> bool:
    """Reconcile the place index when its size strays from the count of queued jobs (a lost
    Redis, or entries a failed commit left), at most once a minute. True if it reconciled.

    Counting the queued jobs is an index-only scan over the queued jobs, off the request path.
    """
    client = redis_client()
    if not client.set(_CHECKED_KEY, 1, nx=True, ex=_CHECK_INTERVAL):
        return False
    queued = Job.objects.filter(status=Job.Status.QUEUED).count()
    indexed = int(client.zcard(JOBS_KEY))
    # Jobs admitted or claimed between the two reads make a busy queue differ a little.
    if abs(queued - indexed) <= queued // 1000:
        return False
    queue_index_reconcile()
    return True


_FLOWS_REBUILD_SQL = """
    WITH active AS (
        SELECT workspace_id, COUNT(*) FILTER (WHERE status = 'running') AS running
        FROM generation_job WHERE status IN ('queued', 'running') GROUP BY workspace_id
    )
    INSERT INTO generation_queueflow
        (workspace_id, last_finish, last_seq, head_finish, head_seq, head_lane, max_in_flight,
         running)
    SELECT active.workspace_id, COALESCE(tail.finish_tag, 0), COALESCE(tail.queue_seq, 0),
           head.finish_tag, head.queue_seq, COALESCE(head.lane, ''),
           COALESCE(head.max_in_flight, 1), active.running
    FROM active
    LEFT JOIN LATERAL (
        SELECT finish_tag, queue_seq, lane, max_in_flight FROM generation_job
        WHERE workspace_id = active.workspace_id AND status = 'queued'
        ORDER BY finish_tag, queue_seq LIMIT 1
    ) AS head ON TRUE
    LEFT JOIN LATERAL (
        SELECT finish_tag, queue_seq FROM generation_job
        WHERE workspace_id = active.workspace_id AND status = 'queued'
        ORDER BY finish_tag DESC, queue_seq DESC LIMIT 1
    ) AS tail ON TRUE
    ON CONFLICT (workspace_id) DO UPDATE SET
        last_finish = GREATEST(generation_queueflow.last_finish, EXCLUDED.last_finish),
        head_finish = EXCLUDED.head_finish, head_seq = EXCLUDED.head_seq,
        head_lane = EXCLUDED.head_lane, max_in_flight = EXCLUDED.max_in_flight,
        running = EXCLUDED.running
"""


def flows_rebuild() -> None:
    """Derive every flow from the jobs: after jobs were inserted or changed in bulk by SQL
    (a benchmark's fill, a repair by hand). O(n); the services never need it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE generation_queueflow IN EXCLUSIVE MODE")
        cursor.execute(
            "UPDATE generation_queueflow SET head_finish = NULL, head_seq = NULL, "
            "head_lane = '', running = 0 WHERE head_finish IS NOT NULL OR running > 0"
        )
        cursor.execute(_FLOWS_REBUILD_SQL)
