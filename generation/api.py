from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.limits import limit_headers, submit_rate_check, submit_rate_usage
from billing.models import Lane, Plan
from billing.selectors import plan_for, quota_status
from billing.services import QuotaExceeded
from config.api_errors import ApiError
from config.serializers import StrictSerializer
from generation.admission import (
    admission_check,
    lane_wait_estimate,
    live_workers,
    operator_switches,
)
from generation.model_info import model_info
from generation.models import Image, Job
from generation.policy import policy_check
from generation.selectors import QueuePlace, images_for, job_queue_place, jobs_for
from generation.services import MAX_SEED, job_cancel, job_submit
from generation.uploads import fit_size, png_file, upload_decode


class GenerationInput(StrictSerializer):
    prompt = serializers.CharField(max_length=settings.MAX_PROMPT_LENGTH)
    negative_prompt = serializers.CharField(
        max_length=settings.MAX_PROMPT_LENGTH, required=False, allow_blank=True, default=""
    )
    width = serializers.IntegerField(required=False, min_value=8)
    height = serializers.IntegerField(required=False, min_value=8)
    steps = serializers.IntegerField(required=False, min_value=1)
    guidance = serializers.FloatField(required=False, min_value=0.0, max_value=30.0)
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEED
    )
    num_images = serializers.IntegerField(required=False, min_value=1)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults from the model's metadata and hold every value to the caller's plan."""
        plan: Plan = self.context["plan"]
        model = model_info(settings.GENERATION_MODEL)
        errors: dict[str, str] = {}
        data.setdefault("width", min(model.native_size, plan.max_width))
        data.setdefault("height", min(model.native_size, plan.max_height))
        data.setdefault("steps", min(model.recommended_steps, plan.max_steps))
        data.setdefault("guidance", model.recommended_guidance)
        data.setdefault("num_images", 1)
        data.setdefault("seed", None)
        for side, limit in (("width", plan.max_width), ("height", plan.max_height)):
            if data[side] % 8:
                errors[side] = "Must be a multiple of 8."
            elif data[side] < model.min_size:
                errors[side] = f"At least {model.min_size}."
            elif data[side] > limit:
                errors[side] = f"At most {limit} on the {plan.name} plan."
        if data["steps"] > plan.max_steps:
            errors["steps"] = f"At most {plan.max_steps} on the {plan.name} plan."
        if data["num_images"] > plan.images_per_request:
            errors["num_images"] = f"At most {plan.images_per_request} on the {plan.name} plan."
        if errors:
            raise serializers.ValidationError(errors)
        return data


class EditInput(GenerationInput):
    """An edit: the usual parameters, the photo, and how far to move away from it.

    Without width and height the photo's own aspect is kept, scaled to fit the plan."""

    image = serializers.FileField()
    strength = serializers.FloatField(required=False, min_value=0.05, max_value=1.0, default=0.6)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        plan: Plan = self.context["plan"]
        try:
            photo = upload_decode(data.pop("image"))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"image": exc.detail}) from None
        if "width" not in data and "height" not in data:
            minimum = model_info(settings.GENERATION_MODEL).min_size
            data["width"], data["height"] = fit_size(
                photo, max_width=plan.max_width, max_height=plan.max_height, minimum=minimum
            )
        data = super().validate(data)
        data["source_image"] = png_file(photo)
        return data


class ImageOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "index", "url", "width", "height", "seed", "created_at"]

    def get_url(self, image: Image) -> str:
        return self.context["request"].build_absolute_uri(f"/api/v1/images/{image.id}")


class JobOutput(serializers.ModelSerializer):
    images = ImageOutput(many=True, read_only=True)
    queue_position = serializers.SerializerMethodField()
    estimated_start_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "prompt", "negative_prompt", "width", "height", "steps",
            "guidance", "seed", "num_images", "strength", "lane", "progress", "model",
            "queue_position", "estimated_start_seconds", "error_code", "error_message",
            "created_at", "started_at", "finished_at", "images",
        ]  # fmt: skip

    def _place(self, job: Job) -> QueuePlace | None:
        if job.status != Job.Status.QUEUED:
            return None
        cache = self.context.setdefault("queue_places", {})
        if job.pk not in cache:
            cache[job.pk] = job_queue_place(job)
        return cache[job.pk]

    def get_queue_position(self, job: Job) -> int | None:
        """1 when the job runs next; null once it has started."""
        place = self._place(job)
        return place.position if place else None

    def get_estimated_start_seconds(self, job: Job) -> int | None:
        place = self._place(job)
        return round(place.wait_seconds) if place else None


class WorkspaceLimitsMixin:
    """Adds the rate-limit and quota headers to every response of a generation API."""

    rate_usage: dict[str, Any] | None = None

    def plan(self, request: Request) -> Plan:
        if not hasattr(request, "plan"):
            request.plan = plan_for(request.workspace)
        return request.plan

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if getattr(request, "workspace", None) is not None:
            plan = self.plan(request)
            usage = self.rate_usage or submit_rate_usage(request, plan, increment=False)
            quota = getattr(request, "quota", None) or quota_status(
                workspace=request.workspace, plan=plan
            )
            for name, value in limit_headers(usage=usage, quota=quota).items():
                response[name] = value
        banner = operator_switches().banner
        if banner:
            response["Atelier-Notice"] = banner
        return response


class JobPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 20
    max_page_size = 100
    page_size_query_param = "limit"


class GenerationSubmitMixin(WorkspaceLimitsMixin):
    """The one admission path of every API that creates jobs: the native API and the
    OpenAI-compatible one (generation/openai_api.py) both submit through `submit`."""

    def submit(
        self,
        request: Request,
        data: Any,
        *,
        kind: str = Job.Kind.TEXT_TO_IMAGE,
        extra: dict[str, Any] | None = None,
        serializer_class: type[GenerationInput] = GenerationInput,
    ) -> tuple[Job, bool]:
        """Suspension, rate limit, validation against the plan, then job_submit (quota)."""
        workspace = request.workspace
        if workspace.is_suspended:
            raise ApiError(
                "This workspace is suspended.", code="workspace_suspended", status_code=403
            )
        plan = self.plan(request)
        self.rate_usage = submit_rate_check(request, plan)
        validated = serializer_class(data=data, context={"plan": plan})
        validated.is_valid(raise_exception=True)
        params = {"kind": kind, **validated.validated_data, **(extra or {})}
        key = idempotency_key(request)
        place = None
        if not (key and jobs_for(workspace).filter(idempotency_key=key).exists()):
            # A replay returns its job (or a 409) below; anything new passes these first.
            # A request the window cannot hold is refused before anything is written (the
            # reservation in job_submit stays the authority under concurrency).
            request.quota = quota_status(workspace=workspace, plan=plan)
            if params["num_images"] > request.quota.remaining:
                raise QuotaExceeded(limit=request.quota.limit, reset_at=request.quota.reset_at)
            policy_check(workspace=workspace, user=request.user, prompt=params["prompt"])
            place = admission_check(workspace=workspace, plan=plan, images=params["num_images"])
        try:
            job, created = job_submit(
                workspace=workspace,
                user=request.user,
                api_key=request.api_key,
                plan=plan,
                model=settings.GENERATION_MODEL,
                params=params,
                idempotency_key=key,
            )
        except QuotaExceeded:
            request.quota = None  # a concurrent request took the rest: the headers re-read
            raise
        request.quota = getattr(job, "quota_after", None)
        # The new job's queue place, worked out by admission: the response needn't ask again.
        self.queue_places = {job.pk: place} if created and place else {}
        return job, created


class GenerationListCreateApi(GenerationSubmitMixin, APIView):
    def get(self, request: Request) -> Response:
        paginator = JobPagination()
        page = paginator.paginate_queryset(jobs_for(request.workspace), request, view=self)
        data = JobOutput(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    def post(self, request: Request) -> Response:
        job, created = self.submit(request, request.data)
        if created:
            job._prefetched_objects_cache = {"images": Image.objects.none()}  # none made yet
        headers = {} if created else {"Idempotent-Replayed": "true"}
        context = {"request": request, "queue_places": self.queue_places}
        body = JobOutput(job, context=context).data
        return Response(body, status=202 if created else 200, headers=headers)


class EditCreateApi(GenerationSubmitMixin, APIView):
    """POST /api/v1/edits (multipart): image, prompt, strength and the usual parameters."""

    parser_classes = [MultiPartParser]

    def post(self, request: Request) -> Response:
        job, created = self.submit(
            request, request.data, kind=Job.Kind.EDIT, serializer_class=EditInput
        )
        headers = {} if created else {"Idempotent-Replayed": "true"}
        context = {"request": request, "queue_places": self.queue_places}
        body = JobOutput(job, context=context).data
        return Response(body, status=202 if created else 200, headers=headers)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ApiError(
            "Idempotency-Key must be 1 to 255 characters.",
            code="invalid_request",
            param="Idempotency-Key",
        )
    return key


class GenerationDetailApi(WorkspaceLimitsMixin, APIView):
    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(jobs_for(request.workspace), pk=job_id)
        return Response(JobOutput(job, context={"request": request}).data)


class GenerationCancelApi(WorkspaceLimitsMixin, APIView):
    def post(self, request: Request, job_id: str) -> Response:
        job = job_cancel(job=get_object_or_404(jobs_for(request.workspace), pk=job_id))
        return Response(JobOutput(job, context={"request": request}).data)


class StatusApi(APIView):
    """GET /api/v1/status: the operators' banner and each lane's estimated wait. Public."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        switches = operator_switches()
        lanes = [lane_wait_estimate(lane) for lane in Lane.values]
        return Response(
            {
                "banner": switches.banner or None,
                "free_tier_paused": switches.free_tier_paused,
                "workers": live_workers(),
                "lanes": [
                    {
                        "lane": estimate.lane,
                        "queued_images": estimate.queued_images,
                        "estimated_wait_seconds": round(estimate.wait_seconds),
                    }
                    for estimate in lanes
                ],
            }
        )


class ImageContentApi(APIView):
    def get(self, request: Request, image_id: str) -> FileResponse:
        image = get_object_or_404(images_for(request.workspace), pk=image_id)
        return FileResponse(image.file.open("rb"), content_type="image/png")
