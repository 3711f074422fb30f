"""Fill the fair queue with many jobs in SQL (generate_series), as admission would stamp them.

For the queue-depth benchmark (bench/queue_depth.py), the depth test
(tests/generation/test_fair_queue_at_depth.py) and any benchmark that needs a deep queue:
inserting a million jobs through job_submit would take an hour, this takes about a minute.

Workspace w gets every `workspaces`-th job. One workspace in ten is on the priority lane,
two on the standard lane, the rest free; each workspace's k-th job has the finish tag
admission would give it with V at 0 (k images over its lane's weight), so the queue is in
the state admission leaves it. Its flows and the Redis place index are then derived from
the jobs (flows_rebuild, queue_index_reconcile). Importing this module sets nothing up.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from generation.queue import TAG_SCALE, flows_rebuild, queue_index_reconcile

_WORKSPACES_SQL = """
    INSERT INTO accounts_workspace (id, name, personal, created_at)
    SELECT gen_random_uuid(), %(prefix)s || n, FALSE, now()
    FROM generate_series(1, %(workspaces)s) AS n
    RETURNING id
"""

# Lane and cap by the workspace's number: 0 priority (cap 4), 1-2 standard (cap 2), else free.
_JOBS_SQL = """
    WITH workspace AS (
        SELECT id, (ROW_NUMBER() OVER (ORDER BY id)) - 1 AS number
        FROM unnest(%(workspaces)s::uuid[]) AS id
    ), plan AS (
        SELECT id, number,
               CASE WHEN number %% 10 = 0 THEN 'priority'
                    WHEN number %% 10 IN (1, 2) THEN 'standard' ELSE 'free' END AS lane,
               CASE WHEN number %% 10 = 0 THEN %(priority)s
                    WHEN number %% 10 IN (1, 2) THEN %(standard)s ELSE %(free)s END AS weight,
               CASE WHEN number %% 10 = 0 THEN 4 WHEN number %% 10 IN (1, 2) THEN 2 ELSE 1 END
                   AS cap
        FROM workspace
    )
    INSERT INTO generation_job (
        id, workspace_id, kind, model, prompt, negative_prompt, width, height, steps, guidance,
        seed, num_images, source_image, lane, status, progress, attempts, worker, error_code,
        error_message, request_hash, created_at, dispatch_weight, max_in_flight, finish_tag,
        queue_seq
    )
    SELECT gen_random_uuid(), plan.id, 'text_to_image', 'demo', 'job ' || n, '', 64, 64, 4,
           3.0, n, 1, '', plan.lane, 'queued', 0, 0, '', '', '', '', now(), plan.weight,
           plan.cap, (n / %(count)s + 1)::bigint * (%(scale)s / plan.weight),
           nextval('generation_job_queue_seq')
    FROM generate_series(0, %(jobs)s - 1) AS n
    JOIN plan ON plan.number = n %% %(count)s
    ORDER BY n
"""


def queue_fill(
    *, jobs: int, workspaces: int, prefix: str = "fill ", index: bool = True
) -> list[object]:
    """Insert `workspaces` workspaces and `jobs` queued jobs spread over them; derive the
    flows and (unless `index` is false: claims do not need it) the place index. Returns the
    workspaces' ids, in the order of their number."""
    with connection.cursor() as cursor:
        cursor.execute(_WORKSPACES_SQL, {"prefix": prefix, "workspaces": workspaces})
        ids = sorted(row[0] for row in cursor.fetchall())
        weights = settings.LANE_WEIGHTS
        cursor.execute(
            _JOBS_SQL,
            {
                "workspaces": ids,
                "count": len(ids),
                "jobs": jobs,
                "scale": TAG_SCALE,
                "priority": weights["priority"],
                "standard": weights["standard"],
                "free": weights["free"],
            },
        )
        cursor.execute("ANALYZE generation_job")
    flows_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE generation_queueflow")
    if index:
        queue_index_reconcile()
    return ids
