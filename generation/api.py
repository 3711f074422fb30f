from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiCallback,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.limits import limit_headers, submit_rate_usage
from billing.models import Plan
from billing.selectors import plan_for, quota_status
from billing.switches import operator_switches
from config.errors import DomainError
from config.openapi import ERRORS, IDEMPOTENCY_KEY, PNG, SUBMIT_ERRORS, error_response
from config.serializers import StrictSerializer
from generation.admission import Admission, LimitsSeen, job_request_admit
from generation.images import DEFAULT_OUTPUT_FORMAT, OUTPUT_FORMATS, mime_type_of_name
from generation.model_info import model_info
from generation.models import Image, Job, WebhookEvent
from generation.selectors import (
    QueuePlace,
    image_to_serve,
    images_prefetched,
    job_queue_place,
    job_with_images,
    jobs_for,
)
from generation.services import MAX_SEED, job_cancel
from generation.uploads import fit_size, mask_decode, png_file, upload_decode
from generation.webhooks import WebhookUrlRefused, webhook_url_check


def _plan_limit(limit: int, plan: Plan) -> str:
    return _("At most %(limit)d on the %(plan)s plan.") % {"limit": limit, "plan": plan.name}


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
    output_format = serializers.ChoiceField(
        list(OUTPUT_FORMATS),
        required=False,
        default=DEFAULT_OUTPUT_FORMAT,
        help_text="How the images are encoded: png (lossless), jpeg or webp. Every format "
        "carries the provenance (PNG text chunks; XMP and EXIF in JPEG and WebP).",
    )
    output_compression = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=100,
        help_text="JPEG and WebP quality, 0-100 (default 100, the best); PNG ignores it.",
    )
    webhook = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="An https URL that receives the job's changes, signed (Standard Webhooks).",
    )
    webhook_events_filter = serializers.ListField(
        child=serializers.ChoiceField(WebhookEvent.choices),
        required=False,
        help_text="Which changes to send: start, progress (at most every 500 ms), completed. "
        "`completed` is always sent.",
    )

    def validate_webhook(self, value: str) -> str:
        try:
            return webhook_url_check(value) if value else value
        except WebhookUrlRefused as exc:
            raise serializers.ValidationError(str(exc)) from None

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
                errors[side] = _("Must be a multiple of 8.")
            elif data[side] < model.min_size:
                errors[side] = _("At least %(minimum)d.") % {"minimum": model.min_size}
            elif data[side] > limit:
                errors[side] = _plan_limit(limit, plan)
        if data["steps"] > plan.max_steps:
            errors["steps"] = _plan_limit(plan.max_steps, plan)
        if data["num_images"] > plan.images_per_request:
            errors["num_images"] = _plan_limit(plan.images_per_request, plan)
        if errors:
            raise serializers.ValidationError(errors)
        return data


class EditInput(GenerationInput):
    """An edit: the usual parameters, the photo, and how far to move away from it.

    Without width and height the photo's own aspect is kept, scaled to fit the plan."""

    image = serializers.FileField()
    mask = serializers.FileField(
        required=False,
        help_text="A PNG the size of the image whose fully transparent pixels (alpha 0) mark "
        "the area to repaint; every other pixel is kept exactly.",
    )
    strength = serializers.FloatField(required=False, min_value=0.05, max_value=1.0, default=0.6)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        plan: Plan = self.context["plan"]
        try:
            photo = upload_decode(data.pop("image"))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"image": exc.detail}) from None
        mask = None
        if (upload := data.pop("mask", None)) is not None:
            try:
                mask = mask_decode(upload, size=photo.size)
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"mask": exc.detail}) from None
        if "width" not in data and "height" not in data:
            minimum = model_info(settings.GENERATION_MODEL).min_size
            data["width"], data["height"] = fit_size(
                photo, max_width=plan.max_width, max_height=plan.max_height, minimum=minimum
            )
        data = super().validate(data)
        data["source_image"] = png_file(photo)
        if mask is not None:
            data["mask_image"] = png_file(mask)
        return data


class ImageOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "index", "url", "width", "height", "seed", "created_at"]

    def get_url(self, image: Image) -> str:
        if "image_url" in self.context:  # webhooks: URLs that need no key
            return self.context["image_url"](image)
        return self.context["request"].build_absolute_uri(f"/api/v1/images/{image.id}")

    def to_representation(self, image: Image) -> dict[str, Any]:
        """What DRF's fields would give (tests/generation/test_job_output.py holds the two
        equal), written out: see JobOutput.to_representation."""
        return {
            "id": str(image.id),
            "index": image.index,
            "url": self.get_url(image),
            "width": image.width,
            "height": image.height,
            "seed": image.seed,
            "created_at": _moment(image.created_at),
        }


class JobOutput(serializers.ModelSerializer):
    images = ImageOutput(many=True, read_only=True)
    queue_position = serializers.SerializerMethodField()
    estimated_start_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "prompt", "negative_prompt", "width", "height", "steps",
            "guidance", "seed", "num_images", "strength", "output_format", "output_compression",
            "lane", "progress", "model",
            "queue_position", "estimated_start_seconds", "error_code", "error_message",
            "created_at", "started_at", "finished_at", "images", "webhook",
            "webhook_events_filter",
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

    def to_representation(self, job: Job) -> dict[str, Any]:
        """The fields above, as DRF's ModelSerializer renders them, written out.

        DRF builds a ModelSerializer's fields afresh for every instance (the model's field
        mapping, then a deep copy of each field): 0.7 ms of CPU per job here, a tenth of a
        submission's. The Meta and declared fields stay the schema's source, and
        tests/generation/test_job_output.py holds this equal to DRF's own rendering
        (`ModelSerializer.to_representation`) for jobs in every state."""
        images = ImageOutput(context=self.context)
        return {
            "id": str(job.id),
            "kind": str(job.kind),
            "status": str(job.status),
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "width": job.width,
            "height": job.height,
            "steps": job.steps,
            "guidance": float(job.guidance),
            "seed": job.seed,
            "num_images": job.num_images,
            "strength": None if job.strength is None else float(job.strength),
            "output_format": job.output_format,
            "output_compression": job.output_compression,
            "lane": str(job.lane),
            "progress": float(job.progress),
            "model": job.model,
            "queue_position": self.get_queue_position(job),
            "estimated_start_seconds": self.get_estimated_start_seconds(job),
            "error_code": job.error_code,
            "error_message": job.error_message,
            "created_at": _moment(job.created_at),
            "started_at": _moment(job.started_at),
            "finished_at": _moment(job.finished_at),
            "images": [images.to_representation(image) for image in job.images.all()],
            "webhook": job.webhook,
            "webhook_events_filter": job.webhook_events_filter,
        }


_DATETIME = serializers.DateTimeField()  # stateless: its to_representation reads no field state


def _moment(value: Any) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


class WorkspaceLimitsMixin:
    """Adds the rate-limit and quota headers to every response of a generation API.

    A view that admitted a request keeps its Admission, whose numbers the headers reuse; a
    refused one what admission had read before it refused (LimitsSeen); a read, or a refusal
    before the numbers were read, reads them afresh."""

    admission: Admission | None = None
    limits_seen: LimitsSeen | None = None  # what a refused admission had read
    _plan: Plan | None = None

    def plan(self, request: Request) -> Plan:
        if self._plan is None:
            self._plan = plan_for(request.workspace)
        return self._plan

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        workspace = getattr(request, "workspace", None)
        if workspace is not None:
            plan = self.plan(request)
            seen = self.admission or self.limits_seen
            rate = seen.rate if seen else None
            quota = seen.quota if seen else None
            rate = rate or submit_rate_usage(workspace=workspace, plan=plan, increment=False)
            quota = quota or quota_status(workspace=workspace, plan=plan)
            for name, value in limit_headers(usage=rate, quota=quota).items():
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
    """Hands a validated request to the one admission service (generation/admission.py)."""

    def admit(self, request: Request, params: dict[str, Any]) -> Admission:
        self.limits_seen = LimitsSeen()
        self.admission = job_request_admit(
            workspace=request.workspace,
            user=request.user,
            api_key=request.api_key,
            plan=self.plan(request),
            params=params,
            idempotency_key=idempotency_key(request),
            seen=self.limits_seen,
        )
        return self.admission

    def validated(
        self, request: Request, data: Any, serializer_class: type[GenerationInput]
    ) -> dict[str, Any]:
        serializer = serializer_class(data=data, context={"plan": self.plan(request)})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def admitted_response(self, request: Request, admission: Admission) -> Response:
        job = admission.job
        if admission.created:  # none made yet
            images_prefetched(job, [])
        headers = {} if admission.created else {"Idempotent-Replayed": "true"}
        places = {job.pk: admission.place} if admission.place else {}
        body = JobOutput(job, context={"request": request, "queue_places": places}).data
        return Response(body, status=202 if admission.created else 200, headers=headers)


class JobPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = JobOutput(many=True)


class WebhookPayload(serializers.Serializer):
    type = serializers.ChoiceField(["job.start", "job.progress", "job.completed"])
    timestamp = serializers.DateTimeField()
    data = JobOutput(help_text="The job as the API shows it; image URLs need no key (1 hour).")


PREFER_WAIT = OpenApiParameter(
    "Prefer",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="`wait` or `wait=N`: hold the request until the job finishes or N seconds pass "
    "(at most PREFER_WAIT_MAX_SECONDS, 60 by default), then answer with the job as it is: 201 "
    "when it finished, 202 when it did not. `Preference-Applied` says the wait used.",
)

WEBHOOK_CALLBACK = OpenApiCallback(
    name="webhook",
    path="{$request.body#/webhook}",
    decorator=extend_schema(
        summary="The job's changes, signed as Standard Webhooks say",
        description="Headers `webhook-id` (the same on every retry), `webhook-timestamp` and "
        "`webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body` with the "
        "secret from GET /api/v1/webhooks/default/secret). Answer 2xx within 5 s; network "
        "errors, 429 and 5xx are retried with backoff.",
        request=WebhookPayload,
        responses={200: OpenApiResponse(description="Received.")},
    ),
)


def _submit_responses() -> dict[Any, Any]:
    return {
        202: JobOutput,
        201: OpenApiResponse(JobOutput, description="With `Prefer: wait`: the finished job."),
        200: OpenApiResponse(JobOutput, description="An idempotent replay."),
        **{code: error_response(ERRORS[code]) for code in SUBMIT_ERRORS},
    }


class GenerationListCreateApi(GenerationSubmitMixin, APIView):
    @extend_schema(
        summary="The workspace's jobs, newest first",
        operation_id="generations_list",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next`/`previous`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, at most 100."),
        ],
        responses={200: JobPage, 404: error_response("Invalid cursor.")},
    )
    def get(self, request: Request) -> Response:
        paginator = JobPagination()
        page = paginator.paginate_queryset(jobs_for(request.workspace), request, view=self)
        data = JobOutput(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        summary="Ask for images: the job is queued",
        request=GenerationInput,
        parameters=[IDEMPOTENCY_KEY, PREFER_WAIT],
        responses=_submit_responses(),
        callbacks=[WEBHOOK_CALLBACK],
    )
    def post(self, request: Request) -> Response:
        params = self.validated(request, request.data, GenerationInput)
        admission = self.admit(request, {"kind": Job.Kind.TEXT_TO_IMAGE, **params})
        return self.admitted_response(request, admission)


class EditCreateApi(GenerationSubmitMixin, APIView):
    """POST /api/v1/edits (multipart): image, prompt, strength and the usual parameters."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Edit a photo: the job is queued",
        request={"multipart/form-data": EditInput},
        parameters=[IDEMPOTENCY_KEY, PREFER_WAIT],
        responses=_submit_responses(),
        callbacks=[WEBHOOK_CALLBACK],
    )
    def post(self, request: Request) -> Response:
        params = self.validated(request, request.data, EditInput)
        admission = self.admit(request, {"kind": Job.Kind.EDIT, **params})
        return self.admitted_response(request, admission)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise DomainError(
            _("Idempotency-Key must be 1 to 255 characters."),
            code="invalid_request",
            param="Idempotency-Key",
        )
    return key


class GenerationDetailApi(WorkspaceLimitsMixin, APIView):
    @extend_schema(summary="One job", operation_id="generations_get", responses={200: JobOutput})
    def get(self, request: Request, job_id: str) -> Response:
        job = job_with_images(request.workspace, job_id)
        if job is None:
            raise Http404
        return Response(JobOutput(job, context={"request": request}).data)


class GenerationCancelApi(WorkspaceLimitsMixin, APIView):
    @extend_schema(
        summary="Cancel a queued job; its images are given back",
        request=None,
        responses={
            200: JobOutput,
            409: error_response("The job already started or finished."),
        },
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = job_cancel(job=get_object_or_404(jobs_for(request.workspace), pk=job_id))
        return Response(JobOutput(job, context={"request": request}).data)


class ImageContentApi(APIView):
    @extend_schema(
        summary="An image's file: PNG, JPEG or WebP as its job's output_format said",
        responses={(200, "image/png"): PNG},
    )
    def get(self, request: Request, image_id: str) -> FileResponse:
        image = image_to_serve(image_id, request.workspace)
        if image is None:
            raise Http404
        return FileResponse(image.file.open("rb"), content_type=mime_type_of_name(image.file.name))
