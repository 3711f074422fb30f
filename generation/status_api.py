"""GET /api/v1/status: public, for status pages and clients deciding when to come back."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Lane
from billing.switches import operator_switches
from config.openapi import error_response
from generation.queue import LaneEstimate, lane_wait_estimate, live_workers

STATUS_CACHE_KEY = "status:v1"


class LaneStatus(serializers.Serializer):
    lane = serializers.CharField()
    queued_images = serializers.IntegerField()
    estimated_wait_seconds = serializers.SerializerMethodField()

    def get_estimated_wait_seconds(self, estimate: LaneEstimate) -> int:
        return round(estimate.wait_seconds)


class StatusOutput(serializers.Serializer):
    banner = serializers.CharField(allow_null=True)
    free_tier_paused = serializers.BooleanField()
    workers = serializers.IntegerField(help_text="GPU workers alive now.")
    lanes = LaneStatus(many=True)


class StatusApi(APIView):
    """GET /api/v1/status: the operators' banner and each lane's estimated wait. Public."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The operators' banner and each lane's estimated wait (public)",
        responses={200: StatusOutput, 429: error_response("Polled too often from one address.")},
        auth=[],
    )
    @method_decorator(
        ratelimit(key="ip", rate=lambda group, request: settings.STATUS_RATE, block=True)
    )
    def get(self, request: Request) -> Response:
        return Response(status_snapshot())


def status_snapshot() -> dict[str, Any]:
    """The status, worked out at most once per STATUS_CACHE_SECONDS for every caller."""
    status = cache.get(STATUS_CACHE_KEY)
    if status is None:
        switches = operator_switches()
        status = StatusOutput(
            {
                "banner": switches.banner or None,
                "free_tier_paused": switches.free_tier_paused,
                "workers": live_workers(),
                "lanes": [lane_wait_estimate(lane) for lane in Lane.values],
            }
        ).data
        cache.set(STATUS_CACHE_KEY, status, settings.STATUS_CACHE_SECONDS)
    return status
