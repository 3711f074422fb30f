"""The workspace's webhooks in the API: endpoints (the secret shown once), the signing secret
of per-job webhooks, and every delivery with its attempts (and a redeliver action).

Every queryset starts from the caller's workspace: another workspace's endpoint or delivery
is a 404.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import error_response
from config.serializers import StrictSerializer
from generation.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from generation.selectors import webhook_deliveries_for, webhook_endpoints_for
from generation.webhooks import (
    signing_secret_for,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_redeliver,
)

EVENTS_HELP = "Any of start, progress (at most every 500 ms per job), completed (always sent)."


class EndpointInput(StrictSerializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(WebhookEvent.choices), required=False, help_text=EVENTS_HELP
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class EndpointUpdateInput(StrictSerializer):
    url = serializers.URLField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(WebhookEvent.choices), required=False, help_text=EVENTS_HELP
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class EndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "events", "enabled", "failing_since", "disabled_reason",
            "created_at",
        ]  # fmt: skip


class NewEndpointOutput(EndpointOutput):
    secret = serializers.CharField(help_text="Shown once: verify signatures with it.")

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret"]


class AttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "latency_ms", "response_status", "error", "succeeded"]


class DeliveryOutput(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="message_id", help_text="The `webhook-id` header.")
    attempts = AttemptOutput(source="tries", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "webhook_id", "job", "endpoint", "url", "event", "status", "attempts",
            "next_attempt_at", "created_at",
        ]  # fmt: skip


class DeliveryPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeliveryOutput(many=True)


class SecretOutput(serializers.Serializer):
    key = serializers.CharField()


class Pages(CursorPagination):
    ordering = "-created_at"
    page_size = 20
    max_page_size = 100
    page_size_query_param = "limit"


NOT_FOUND = {404: error_response("No such endpoint in this workspace.")}


class WebhookEndpointListApi(APIView):
    @extend_schema(
        summary="The workspace's webhook endpoints",
        operation_id="webhooks_list",
        responses=EndpointOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoints_for(request.workspace)
        return Response(EndpointOutput(endpoints, many=True).data)

    @extend_schema(
        summary="Register a webhook endpoint (its signing secret is shown once)",
        request=EndpointInput,
        responses={201: NewEndpointOutput, 400: error_response("A bad or non-public URL.")},
    )
    def post(self, request: Request) -> Response:
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(workspace=request.workspace, **data.validated_data)
        return Response(NewEndpointOutput(endpoint).data, status=201)


class WebhookEndpointDetailApi(APIView):
    @extend_schema(
        summary="One webhook endpoint",
        operation_id="webhooks_get",
        responses={200: EndpointOutput, **NOT_FOUND},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = get_object_or_404(webhook_endpoints_for(request.workspace), pk=endpoint_id)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        summary="Change an endpoint (enable it again after it was disabled)",
        request=EndpointUpdateInput,
        responses={200: EndpointOutput, **NOT_FOUND},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = get_object_or_404(webhook_endpoints_for(request.workspace), pk=endpoint_id)
        data = EndpointUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(summary="Remove an endpoint", responses={204: None, **NOT_FOUND})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        get_object_or_404(webhook_endpoints_for(request.workspace), pk=endpoint_id).delete()
        return Response(status=204)


class WebhookSigningSecretApi(APIView):
    @extend_schema(
        summary="The secret that signs per-job webhooks (`webhook` on a submission)",
        responses=SecretOutput,
    )
    def get(self, request: Request) -> Response:
        return Response({"key": signing_secret_for(request.workspace)})


class WebhookDeliveryListApi(APIView):
    @extend_schema(
        summary="The workspace's webhook deliveries and their attempts, newest first",
        operation_id="webhook_deliveries_list",
        parameters=[
            OpenApiParameter("endpoint", OpenApiTypes.UUID, description="Only this endpoint's."),
            OpenApiParameter("job", OpenApiTypes.UUID, description="Only this job's."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next`/`previous`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, at most 100."),
        ],
        responses={
            200: DeliveryPage,
            400: error_response("`endpoint` or `job` is not a UUID."),
            404: error_response("Invalid cursor."),
        },
    )
    def get(self, request: Request) -> Response:
        deliveries = webhook_deliveries_for(request.workspace)
        filters: dict[str, Any] = {}
        for name in ("endpoint", "job"):
            if value := request.query_params.get(name):
                filters[f"{name}_id"] = serializers.UUIDField().to_internal_value(value)
        paginator = Pages()
        page = paginator.paginate_queryset(deliveries.filter(**filters), request, view=self)
        return paginator.get_paginated_response(DeliveryOutput(page, many=True).data)


class WebhookDeliveryDetailApi(APIView):
    @extend_schema(
        summary="One delivery and its attempts",
        operation_id="webhook_deliveries_get",
        responses={200: DeliveryOutput},
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        delivery = get_object_or_404(webhook_deliveries_for(request.workspace), pk=delivery_id)
        return Response(DeliveryOutput(delivery).data)


class WebhookRedeliverApi(APIView):
    @extend_schema(
        summary="Send a delivery again (same webhook-id and body)",
        request=None,
        responses={
            202: DeliveryOutput,
            409: error_response("It is still being attempted (`delivery_pending`)."),
        },
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = get_object_or_404(webhook_deliveries_for(request.workspace), pk=delivery_id)
        return Response(DeliveryOutput(webhook_redeliver(delivery=delivery)).data, status=202)
