"""The floor under `submit_ratio`: the least a submission does on this stack (a benchmark view).

`POST /bench/floor` does what any submission on Django, DRF, psycopg and PostgreSQL must do
and nothing of the platform's admission: authenticate the key (the API's own authentication,
its cache included), read the workspace's plan, validate the body with the API's own
`GenerationInput` against it, insert the job in one transaction (`config.sql.model_insert`,
as `job_submit` does) and answer it with `JobOutput`, without a place. No rate limit, quota,
content policy, overload estimate, fair-queue stamp, reservation, place index or ticket:
bench-front-door and bench-admission serve it under the shipped configuration beside the real
submission (bench/floor.py): its rate bounds what their submission ratios can reach here.

Its jobs carry FLOOR_REQUEST_ID; the benchmarks delete them after their rounds (bench/floor.py)."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor import FLOOR_PATH, FLOOR_REQUEST_ID
from billing.selectors import plan_for
from config.sql import model_insert
from config.urls import urlpatterns as shipped_urlpatterns
from generation.api import GenerationInput, JobOutput
from generation.models import Job
from generation.selectors import images_prefetched
from generation.services import MAX_SEED


class FloorSubmitApi(APIView):
    def post(self, request: Request) -> Response:
        plan = plan_for(request.workspace)
        serializer = GenerationInput(data=request.data, context={"plan": plan})
        serializer.is_valid(raise_exception=True)
        params: dict[str, Any] = dict(serializer.validated_data)
        params.pop("moderation", None)
        if params.get("seed") is None:
            params["seed"] = secrets.randbelow(MAX_SEED + 1)
        job = Job(
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
        with transaction.atomic():
            model_insert(job)
        images_prefetched(job, [])
        body = JobOutput(job, context={"request": request, "queue_places": {job.pk: None}}).data
        return Response(body, status=202)


urlpatterns = [path(FLOOR_PATH.lstrip("/"), FloorSubmitApi.as_view()), *shipped_urlpatterns]
