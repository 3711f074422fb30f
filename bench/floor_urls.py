"""The floor under `submit_ratio`: the least a submission does on this stack (a benchmark view).

`POST /bench/floor` does what any submission on Django, DRF, psycopg and PostgreSQL must do
and nothing of the platform's admission: authenticate the key (the API's own authentication,
its cache included), read the workspace's plan, validate the body with the API's own
`GenerationInput` against it, insert the job in one transaction (`config.sql.model_insert`,
as `job_submit` does) and answer it with `JobOutput`, without a place. No rate limit, quota,
content policy, overload estimate, fair-queue stamp, reservation, place index or ticket:
bench-front-door and bench-admission serve it under the shipped configuration beside the real
submission (bench/floor.py): its rate bounds what their submission ratios can reach here.

`POST /bench/floor/least-admission` is the floor plus the least any admission with the
product's features does: django-ratelimit's per-minute check (its two Redis round trips), the
content policy matched against rules read once per process (no statement per request), and one
Redis pipeline holding the overload estimate's reads, the place index's two ZADDs (to keys of
its own) and the ticket's LLEN. No quota statement, no fair-queue stamp, none of the estimate's
arithmetic: a bound that a real admission can only cost more than, so the submission ratio a
redesigned admission could reach lies below its rate (bench-front-door prints it).

Their jobs carry FLOOR_REQUEST_ID; the benchmarks delete them after their rounds
(bench/floor.py), with the bound's Redis keys."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor import (
    FLOOR_PATH,
    FLOOR_REQUEST_ID,
    LEAST_ADMISSION_IMAGES_KEY,
    LEAST_ADMISSION_JOBS_KEY,
    LEAST_ADMISSION_PATH,
)
from billing.limits import submit_rate_check
from billing.models import Plan
from billing.selectors import plan_for
from config.sql import model_insert, model_rows
from config.urls import urlpatterns as shipped_urlpatterns
from generation.api import GenerationInput, JobOutput
from generation.models import Job, PolicyRule
from generation.overload import _room_key, _slots_key
from generation.policy import _STANDARD_RULES_SQL, policy_match
from generation.queue import (
    IMAGES_KEY,
    JOBS_KEY,
    SECONDS_PER_BATCH_KEY,
    SECONDS_PER_IMAGE_KEY,
    index_member,
    lane_workers_key,
    redis_client,
)
from generation.selectors import images_prefetched
from generation.services import MAX_SEED
from generation.tickets import lane_queue


def floor_job(request: Request) -> tuple[Plan, Job]:
    """The plan, the body validated against it, and the job it asks for (not yet written)."""
    plan = plan_for(request.workspace)
    serializer = GenerationInput(data=request.data, context={"plan": plan})
    serializer.is_valid(raise_exception=True)
    params: dict[str, Any] = dict(serializer.validated_data)
    params.pop("moderation", None)
    if params.get("seed") is None:
        params["seed"] = secrets.randbelow(MAX_SEED + 1)
    return plan, Job(
        workspace=request.workspace,
        user=request.user,
        api_key=request.api_key,
        kind=Job.Kind.TEXT_TO_IMAGE,
        model=settings.GENERATION_MODEL,
        lane=plan.lane,
        dispatch_weight=settings.LANE_WEIGHTS.get(plan.lane, 1),
        max_in_flight=plan.max_jobs_in_flight,
        moderation_level=plan.moderation_level,
        request_hash="0" * 64,
        request_id=FLOOR_REQUEST_ID,
        **params,
    )


def floor_answer(request: Request, job: Job) -> Response:
    images_prefetched(job, [])
    body = JobOutput(job, context={"request": request, "queue_places": {job.pk: None}}).data
    return Response(body, status=202)


class FloorSubmitApi(APIView):
    def post(self, request: Request) -> Response:
        _, job = floor_job(request)
        with transaction.atomic():
            model_insert(job)
        return floor_answer(request, job)


_rules: list[PolicyRule] = []  # read by the first request of each process, then kept


class LeastAdmissionApi(APIView):
    def post(self, request: Request) -> Response:
        plan, job = floor_job(request)
        submit_rate_check(workspace=request.workspace, plan=plan)
        if not _rules:
            _rules.extend(model_rows(PolicyRule, _STANDARD_RULES_SQL, ()))
        if policy_match(job.prompt, _rules) is not None:
            return Response({"error": "the bound's body matched a policy rule"}, status=422)
        with transaction.atomic():
            model_insert(job)
        member = index_member(secrets.randbelow(10**12))
        pipe = redis_client().pipeline(transaction=False)
        pipe.exists(_slots_key(request.workspace))
        pipe.get(_room_key(plan.lane))
        pipe.get(SECONDS_PER_IMAGE_KEY)
        pipe.zcount(lane_workers_key(plan.lane), 0, "+inf")
        pipe.get(SECONDS_PER_BATCH_KEY)
        pipe.zcount(JOBS_KEY, "-inf", "+inf")
        pipe.zcount(IMAGES_KEY, "-inf", "+inf")
        pipe.zadd(LEAST_ADMISSION_JOBS_KEY, {member: 1})
        pipe.zadd(LEAST_ADMISSION_IMAGES_KEY, {f"{member}:{n}": 1 for n in range(job.num_images)})
        pipe.llen(lane_queue(plan.lane))
        pipe.execute()
        return floor_answer(request, job)


urlpatterns = [
    path(FLOOR_PATH.lstrip("/"), FloorSubmitApi.as_view()),
    path(LEAST_ADMISSION_PATH.lstrip("/"), LeastAdmissionApi.as_view()),
    *shipped_urlpatterns,
]
