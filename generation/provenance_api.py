"""POST /api/v1/provenance/verify: what an image says about where it came from. Public."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import ERRORS, error_response
from config.serializers import StrictSerializer
from generation.provenance import provenance_verify, verification_report
from generation.uploads import upload_read


class VerifyInput(StrictSerializer):
    image = serializers.FileField(help_text="A PNG, JPEG or WebP image.")

    def validate_image(self, upload: Any) -> tuple[bytes, Any]:
        return upload_read(upload)


class C2paOutput(serializers.Serializer):
    validation_state = serializers.CharField(help_text="C2PA's: Invalid, Valid or Trusted.")
    valid = serializers.BooleanField()
    from_this_platform = serializers.BooleanField(
        help_text="Signed with this platform's certificate, and valid."
    )
    issuer = serializers.CharField()
    actions = serializers.ListField(child=serializers.CharField())
    digital_source_types = serializers.ListField(child=serializers.CharField())
    ai_generated = serializers.BooleanField()
    platform = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    ingredients = serializers.IntegerField()


class WatermarkOutput(serializers.Serializer):
    payload = serializers.CharField(help_text="The invisible watermark's 48 bits, in hex.")


class VerifiedImageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    index = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class VerifiedJobOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    prompt = serializers.CharField()
    created_at = serializers.DateTimeField()


class VerifyOutput(serializers.Serializer):
    from_this_platform = serializers.BooleanField()
    c2pa = C2paOutput(allow_null=True)
    watermark = WatermarkOutput(allow_null=True)
    image = VerifiedImageOutput(allow_null=True, help_text="Members of its workspace only.")
    job = VerifiedJobOutput(allow_null=True, help_text="Members of its workspace only.")


class ProvenanceVerifyApi(APIView):
    """Anyone may verify; with a key or a session, the job shows for the image's workspace."""

    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="What an image carries: C2PA manifest, watermark, and (members) its job",
        request={"multipart/form-data": VerifyInput},
        responses={
            200: VerifyOutput,
            400: error_response(ERRORS[400]),
            401: error_response("A key or session was sent and is wrong (none is needed)."),
            429: error_response("Too many verifications from one address."),
        },
    )
    @method_decorator(
        ratelimit(key="ip", rate=lambda group, request: settings.VERIFY_RATE, block=True)
    )
    def post(self, request: Request) -> Response:
        serializer = VerifyInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, image = serializer.validated_data["image"]
        verification = provenance_verify(
            data=data, image=image, user=request.user, api_key=getattr(request, "api_key", None)
        )
        return Response(VerifyOutput(verification_report(verification)).data)
