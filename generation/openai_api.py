"""The OpenAI-compatible images API: /v1/images/generations, /v1/images/edits and /v1/models.

Tools written for OpenAI's images API work against Atelier by changing the base URL and the
key. A request is admitted by the one admission service (generation/admission.py: rate
limit, plan limits, policy, overload, quota), so both APIs refuse and charge alike; then the
view waits for the job on the event loop (generation/waiting.py) and answers in OpenAI's
shape. Errors are the shared {"error": {...}} shape, which is OpenAI's, with OpenAI's
parameter names and status codes.

Over 300 lines: one surface (generations, edits, signed image URLs, models), with each
view's serializers beside it as in the native API.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication
from config.api_errors import error_body
from config.errors import DomainError
from config.openapi import error_response
from config.serializers import StrictSerializer
from generation.api import EditInput, GenerationInput, GenerationSubmitMixin
from generation.events_api import event_stream_response
from generation.images import OUTPUT_FORMATS, mime_type_of_name
from generation.models import Image, Job
from generation.openai_stream import openai_image_events, openai_usage
from generation.selectors import image_to_serve
from generation.services import MAX_SEED
from generation.waiting import JobWaitTimeout, job_abandon, job_wait, request_thread_release

# OpenAI's image model names, served by this platform's model so that tools which name one
# still work. Any other name is refused.
OPENAI_MODEL_ALIASES = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini")
# Previews a stream may ask for, as OpenAI allows; input images an edit takes.
MAX_PARTIAL_IMAGES = 3
MAX_INPUT_IMAGES = 1
SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# Native parameter names in validation errors, told in OpenAI's terms.
OPENAI_PARAM = {"num_images": "n", "width": "size", "height": "size"}
# Headers of the admission answer that the final answer carries too.
LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit-Images",
    "X-RateLimit-Remaining-Images",
    "X-RateLimit-Reset-Images",
)
IMAGE_URL_SALT = "atelier.openai.image-url"


def served_model_id() -> str:
    """The public name of the model: GENERATION_MODEL_NAME, or the folder's name or hub id."""
    if settings.GENERATION_MODEL_NAME:
        return settings.GENERATION_MODEL_NAME
    model = settings.GENERATION_MODEL
    return Path(model).name if Path(model).is_dir() else model


def model_object() -> dict[str, Any]:
    return {"id": served_model_id(), "object": "model", "created": 0, "owned_by": "atelier"}


class OpenAIImageInput(StrictSerializer):
    """OpenAI's request body, plus Atelier's own knobs (send them with `extra_body`)."""

    prompt = serializers.CharField(max_length=settings.MAX_PROMPT_LENGTH)
    model = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10)
    size = serializers.CharField(required=False, allow_null=True, help_text='"WxH" or "auto"')
    response_format = serializers.ChoiceField(
        ["url", "b64_json"], required=False, allow_null=True, default="url"
    )
    output_format = serializers.ChoiceField(list(OUTPUT_FORMATS), required=False, allow_null=True)
    output_compression = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=100
    )
    stream = serializers.BooleanField(required=False, allow_null=True)
    partial_images = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_PARTIAL_IMAGES
    )
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)
    # "low" asks for the standard moderation level on a strict plan that allows it; "auto" and
    # anything else keep the plan's level.
    moderation = serializers.CharField(
        required=False,
        allow_null=True,
        help_text='"low": the standard level, where the plan allows.',
    )
    # Accepted for compatibility; the platform has no equivalent, so they change nothing.
    quality = serializers.CharField(required=False, allow_null=True)
    style = serializers.CharField(required=False, allow_null=True)
    background = serializers.CharField(required=False, allow_null=True)
    safety_identifier = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    # Atelier's parameters, validated against the plan like the native API's.
    negative_prompt = serializers.CharField(required=False, allow_blank=True)
    steps = serializers.IntegerField(required=False)
    guidance = serializers.FloatField(required=False)
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEED
    )

    def validate_model(self, value: str | None) -> str | None:
        if value and value not in (served_model_id(), *OPENAI_MODEL_ALIASES):
            raise serializers.ValidationError(
                _("The model %(model)r does not exist. This server serves %(served)r.")
                % {"model": value, "served": served_model_id()}
            )
        return value

    def validate_size(self, value: str | None) -> str | None:
        if value not in (None, "", "auto") and not SIZE.match(value):
            raise serializers.ValidationError(
                _('Must be "WIDTHxHEIGHT", such as "512x512", or "auto".')
            )
        return value

    def validate_background(self, value: str | None) -> str | None:
        if value == "transparent":
            raise serializers.ValidationError(
                _("Transparent backgrounds are not supported: every image is opaque.")
            )
        return value

    def generation_params(self) -> dict[str, Any]:
        """The native API's parameters (GenerationInput) for this request."""
        data = self.validated_data
        params: dict[str, Any] = {"prompt": data["prompt"]}
        if data.get("n") is not None:
            params["num_images"] = data["n"]
        if size := SIZE.match(data.get("size") or ""):
            params["width"], params["height"] = int(size[1]), int(size[2])
        for name in ("negative_prompt", "steps", "guidance", "seed"):
            if name in data:
                params[name] = data[name]
        for name in ("output_format", "output_compression"):
            if data.get(name) is not None:
                params[name] = data[name]
        return params

    def previews_wanted(self) -> int:
        """Previews to stream before the image (0 unless streaming)."""
        data = self.validated_data
        return (data.get("partial_images") or 0) if data.get("stream") else 0


class ImageDatum(serializers.Serializer):
    url = serializers.URLField(
        required=False, help_text="With response_format=url: a signed URL, no key needed."
    )
    b64_json = serializers.CharField(required=False, help_text="With response_format=b64_json.")


class ImagesResponse(serializers.Serializer):
    created = serializers.IntegerField(help_text="Unix time the images were made.")
    data = ImageDatum(many=True)
    output_format = serializers.CharField(help_text="png, jpeg or webp, as asked.")
    size = serializers.CharField()
    quality = serializers.CharField(help_text="As asked (it changes nothing here), or auto.")
    background = serializers.CharField(help_text="Always opaque.")
    usage = serializers.DictField(
        help_text="output_tokens and total_tokens: the images made (the quota's unit); input "
        "tokens are not metered (0)."
    )


class ModelObject(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelList(serializers.Serializer):
    object = serializers.CharField()
    data = ModelObject(many=True)


IMAGE_ERRORS = {
    409: "An Idempotency-Key reused with another body, or the job was cancelled.",
    429: "Rate limit (`rate_limit_exceeded`) or quota (`quota_exceeded`): "
    "openai.RateLimitError. `Retry-After` says when to come back.",
    500: "The job failed (`generation_failed`); nothing was charged.",
    503: "Overloaded (`overloaded`), or the images were not ready within OPENAI_WAIT_SECONDS "
    "(`generation_timeout`: the job was cancelled, nothing was charged). See `Retry-After`.",
}


class OpenAIEditInput(OpenAIImageInput):
    """OpenAI's multipart edit request: one `image` (or `image[]`), an optional `mask`."""

    image = serializers.FileField()
    mask = serializers.FileField(required=False)
    input_fidelity = serializers.CharField(required=False, allow_null=True)
    strength = serializers.FloatField(required=False, help_text="Atelier: how far to move away.")

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):  # multipart: the openai package sends lists as `name[]`
            images = data.getlist("image[]") + data.getlist("image")
            data = {name: data.get(name) for name in data if name != "image[]"}
            if len(images) > MAX_INPUT_IMAGES:
                # The served model edits one picture; reference images would need a model
                # that takes them. Refused, so that none is ignored without a word.
                raise serializers.ValidationError(
                    {
                        "image": [
                            _(
                                "This model edits one image at a time and uses no reference "
                                "images: send one image (%(count)d were sent)."
                            )
                            % {"count": len(images)}
                        ]
                    }
                )
            if images:
                data["image"] = images[0]
        return super().to_internal_value(data)

    def generation_params(self) -> dict[str, Any]:
        params = super().generation_params()
        params["image"] = self.validated_data["image"]
        if self.validated_data.get("mask") is not None:
            params["mask"] = self.validated_data["mask"]
        if "strength" in self.validated_data:
            params["strength"] = self.validated_data["strength"]
        return params


def openai_error_response(
    *, code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JsonResponse:
    response = JsonResponse(
        error_body(code=code, message=message, status_code=status), status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class OpenAISubmitApi(GenerationSubmitMixin, APIView):
    """The synchronous half of an OpenAI images request: authenticate, admit, enqueue.

    Its 202 answer never reaches the client: OpenAIImagesView reads the admitted job from it
    and waits. Its refusals do, as they are.
    """

    authentication_classes = [ApiKeyAuthentication]
    input_class: type[OpenAIImageInput] = OpenAIImageInput
    serializer_class: type[GenerationInput] = GenerationInput
    kind = Job.Kind.TEXT_TO_IMAGE

    @extend_schema(
        summary="OpenAI-compatible: generate images and wait for them",
        description="OpenAI's `images.generate`. Policy refusals are 400 here, as in OpenAI's API. "
        "With `stream: true` the answer is Server-Sent Events: `image_generation.partial_image` "
        "(`partial_images` of them), then `image_generation.completed` per image, or `error`.",
        request=OpenAIImageInput,
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            200: ImagesResponse,
            **{code: error_response(text) for code, text in IMAGE_ERRORS.items()},
        },
        tags=["openai"],
    )
    def post(self, request: Request) -> Response:
        data = self.input_class(data=request.data)
        data.is_valid(raise_exception=True)
        params = self.validated(request, data.generation_params(), self.serializer_class)
        if data.validated_data.get("moderation") == "low":  # as far as the plan allows
            params["moderation"] = "low"
        partials = {"partial_images": count} if (count := data.previews_wanted()) else {}
        job = self.admit(request, {"kind": self.kind, **params, **partials}).job
        admitted = {
            "job_id": str(job.id),
            "response_format": data.validated_data["response_format"],
            "stream": bool(data.validated_data.get("stream")),
            "quality": data.validated_data.get("quality") or "auto",
        }
        return Response(admitted, status=202)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
            renamed: dict[str, list[Any]] = {}
            for name, errors in exc.detail.items():
                renamed.setdefault(OPENAI_PARAM.get(name, name), []).extend(
                    errors if isinstance(errors, list) else [errors]
                )
            exc = exceptions.ValidationError(renamed)
        response = super().handle_exception(exc)
        if isinstance(exc, DomainError) and exc.code == "policy_refused":
            response.status_code = 400  # OpenAI refuses a prompt (content policy) with a 400
        code = (
            response.data.get("error", {}).get("code") if isinstance(response.data, dict) else None
        )
        if code == "quota_exceeded" or response.status_code == 409:
            # The openai package retries 409 and 429; these answers do not change by retrying.
            response["x-should-retry"] = "false"
        return response


@method_decorator(csrf_exempt, name="dispatch")
class OpenAIImagesView(View):
    """POST handler that admits through `submit_api`, then waits without holding a thread."""

    submit_api: type[OpenAISubmitApi] = OpenAISubmitApi
    event_prefix = "image_generation"  # of the streamed events' types
    http_method_names = ["post", "options"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        # drf-spectacular describes the endpoint by its DRF half.
        view.cls, view.initkwargs = cls.submit_api, {}
        return view

    async def post(self, request: HttpRequest) -> HttpResponse:
        admission = await sync_to_async(self.submit_api.as_view())(request)
        if admission.status_code != 202:
            return admission
        job_id, response_format = admission.data["job_id"], admission.data["response_format"]
        headers = {name: admission[name] for name in LIMIT_HEADERS if admission.has_header(name)}
        if admission.data["stream"]:
            await request_thread_release()
            response = event_stream_response(
                openai_image_events(
                    job_id, event_prefix=self.event_prefix, quality=admission.data["quality"]
                )
            )
            for name, value in headers.items():
                response[name] = value
            return response
        try:
            await request_thread_release()
            job = await job_wait(job_id, timeout=settings.OPENAI_WAIT_SECONDS)
        except JobWaitTimeout:
            job = await job_abandon(job_id)
            if job.status == Job.Status.CANCELLED:
                return self._timeout(headers)
        except BaseException:
            # The client went away (the task is cancelled): nobody will take the images.
            await job_abandon(job_id)
            raise
        return await sync_to_async(self._answer)(
            request, job, response_format, admission.data["quality"], headers
        )

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = openai_error_response(
            code="method_not_allowed",
            message=_('Method "%(method)s" not allowed.') % {"method": request.method},
            status=405,
            headers={"Allow": ", ".join(self._allowed_methods())},
        )
        if self.view_is_async:

            async def answer() -> HttpResponse:
                return response

            return answer()
        return response

    def _timeout(self, headers: dict[str, str]) -> JsonResponse:
        # The job was cancelled and given back, so a retry is safe (and the openai package
        # makes one by itself, after Retry-After).
        return openai_error_response(
            code="generation_timeout",
            message=_(
                "The GPUs are busy: the image was not ready within %(seconds)d s. It was "
                "cancelled and nothing was charged; try again shortly."
            )
            % {"seconds": settings.OPENAI_WAIT_SECONDS},
            status=503,
            headers={**headers, "Retry-After": "30"},
        )

    def _answer(
        self,
        request: HttpRequest,
        job: Job,
        response_format: str,
        quality: str,
        headers: dict[str, str],
    ) -> JsonResponse:
        if job.status != Job.Status.SUCCEEDED:
            failed = job.status == Job.Status.FAILED
            return openai_error_response(
                code=(job.error_code or "generation_failed") if failed else "job_cancelled",
                message=job.error_message
                or _("The job was %(status)s. Nothing was charged.")
                % {"status": job.get_status_display()},
                status=500 if failed else 409,
                headers=headers if failed else {**headers, "x-should-retry": "false"},
            )
        images = list(job.images.all())
        body = {
            "created": int((job.finished_at or job.created_at).timestamp()),
            "data": [image_data(request, image, response_format) for image in images],
            "output_format": job.output_format,
            "size": f"{job.width}x{job.height}",
            "quality": quality,
            "background": "opaque",
            "usage": openai_usage(len(images)),
        }
        response = JsonResponse(body)
        for name, value in headers.items():
            response[name] = value
        return response


class OpenAIEditSubmitApi(OpenAISubmitApi):
    """The synchronous half of POST /v1/images/edits: the native edit path (EditInput)."""

    parser_classes = [MultiPartParser]
    input_class = OpenAIEditInput
    serializer_class = EditInput
    kind = Job.Kind.EDIT

    @extend_schema(
        summary="OpenAI-compatible: edit an image and wait for the result",
        description="OpenAI's `images.edit`, on the native edit path (`POST /api/v1/edits`); "
        "`mask`: a PNG of the image's size whose transparent pixels are repainted. With "
        "`stream: true`: `image_edit.partial_image` and `image_edit.completed` events.",
        request={"multipart/form-data": OpenAIEditInput},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            200: ImagesResponse,
            **{code: error_response(text) for code, text in IMAGE_ERRORS.items()},
        },
        tags=["openai"],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class OpenAIEditsView(OpenAIImagesView):
    submit_api = OpenAIEditSubmitApi
    event_prefix = "image_edit"


def image_data(request: HttpRequest, image: Image, response_format: str) -> dict[str, str]:
    if response_format == "b64_json":
        with image.file.open("rb") as file:
            return {"b64_json": base64.b64encode(file.read()).decode()}
    return {"url": signed_image_url(request, image)}


def signed_image_url(request: HttpRequest, image: Image) -> str:
    """A URL that fetches the PNG without the API key, until OPENAI_IMAGE_URL_TTL runs out.

    OpenAI's image URLs work without a header, and clients rely on it: they put the URL in
    an <img src> or hand it to another program. The signature makes it a capability for
    this one image only, for a limited time, like OpenAI's.
    """
    token = signing.TimestampSigner(salt=IMAGE_URL_SALT).sign(str(image.id)).split(":", 1)[1]
    return request.build_absolute_uri(f"/v1/images/content/{image.id}?token={token}")


class SignedImageContentApi(APIView):
    """GET /v1/images/content/<id>?token=…: the PNG behind a signed URL."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="An image behind a signed URL (no API key)",
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, required=True)],
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The PNG."),
            403: error_response("The URL expired (`url_expired`) or is not valid."),
            404: error_response("The image no longer exists."),
        },
        tags=["openai"],
    )
    def get(self, request: Request, image_id: str) -> FileResponse:
        token = request.query_params.get("token", "")
        signer = signing.TimestampSigner(salt=IMAGE_URL_SALT)
        try:
            signer.unsign(f"{image_id}:{token}", max_age=settings.OPENAI_IMAGE_URL_TTL)
        except signing.SignatureExpired:
            raise exceptions.PermissionDenied(
                "This image URL has expired.", code="url_expired"
            ) from None
        except signing.BadSignature:
            raise exceptions.PermissionDenied(
                "This image URL is not valid.", code="invalid_signature"
            ) from None
        # Not while its workspace is suspended (the URL works again on unsuspend).
        image = image_to_serve(image_id)
        if image is None:
            raise Http404
        return FileResponse(image.file.open("rb"), content_type=mime_type_of_name(image.file.name))


class ModelListApi(APIView):
    """GET /v1/models: the model this platform serves."""

    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(
        summary="OpenAI-compatible: the models served",
        operation_id="openai_models_list",
        responses=ModelList,
        tags=["openai"],
    )
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": [model_object()]})


class ModelDetailApi(APIView):
    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(
        summary="OpenAI-compatible: one model",
        operation_id="openai_models_get",
        responses=ModelObject,
        tags=["openai"],
    )
    def get(self, request: Request, model_id: str) -> Response:
        if model_id not in (served_model_id(), *OPENAI_MODEL_ALIASES):
            raise DomainError(
                _("The model %(model)r does not exist.") % {"model": model_id},
                code="model_not_found",
            )
        return Response({**model_object(), "id": model_id})
