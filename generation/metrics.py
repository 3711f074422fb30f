"""GET /metrics, and the queue's figures read when Prometheus scrapes.

The counters and histograms are config/metrics.py's, recorded where things happen. What the
queue looks like now is read at scrape time from the figures the status API and admission
already use, each O(1) or O(log n) whatever the depth of the queue (never a COUNT over
jobs): the place index's sizes (ZCARD), each lane's images ahead of a new job and its
estimated wait (status_snapshot, cached STATUS_CACHE_SECONDS for every caller), the oldest
queued job per lane (one index seek each), live workers per lane (Redis), and each plan's
`max_wait_seconds` (a few rows) for the alert rules to compare against. A web process's
/metrics reports them; a worker's own metrics port does not, so they are not counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from billing.models import Lane, Plan
from config.api_errors import error_body
from config.metrics import exposition, metrics_access_allowed
from generation.queue import (
    IMAGES_KEY,
    JOBS_KEY,
    lane_live_workers,
    lane_oldest_queued,
    live_workers,
    redis_client,
)
from generation.status_api import status_snapshot

logger = logging.getLogger(__name__)

_PLANS_CACHE_KEY = "metrics:plans:v1"


def _plans() -> list[tuple[str, str, int]]:
    plans = cache.get(_PLANS_CACHE_KEY)
    if plans is None:
        plans = list(Plan.objects.values_list("slug", "lane", "max_wait_seconds"))
        cache.set(_PLANS_CACHE_KEY, plans, 60)
    return plans


class QueueCollector(Collector):
    """The queue as it is now; a figure that cannot be read is left out (and logged)."""

    def collect(self) -> Iterator[Metric]:
        lanes = list(Lane.values)
        try:
            yield from self._redis_figures(lanes)
            yield from self._database_figures(lanes)
        except Exception:
            logger.warning("Queue figures not read for /metrics", exc_info=True)

    def _redis_figures(self, lanes: list[str]) -> Iterator[Metric]:
        pipe = redis_client().pipeline(transaction=False)
        pipe.zcard(JOBS_KEY)
        pipe.zcard(IMAGES_KEY)
        jobs, images = pipe.execute()
        yield GaugeMetricFamily("atelier_queue_jobs", "Jobs queued, all lanes.", value=jobs)
        yield GaugeMetricFamily("atelier_queue_images", "Images queued, all lanes.", value=images)
        yield GaugeMetricFamily(
            "atelier_workers_live", "GPU workers that reported alive.", value=live_workers()
        )
        per_lane = GaugeMetricFamily(
            "atelier_lane_workers_live", "GPU workers serving each lane.", labels=["lane"]
        )
        for lane, count in lane_live_workers(lanes).items():
            per_lane.add_metric([lane], count)
        yield per_lane
        ahead = GaugeMetricFamily(
            "atelier_lane_images_ahead",
            "Images that would run before a new workspace's job in each lane.",
            labels=["lane"],
        )
        wait = GaugeMetricFamily(
            "atelier_lane_estimated_wait_seconds",
            "Estimated wait of a new workspace's job in each lane.",
            labels=["lane"],
        )
        for lane_status in status_snapshot()["lanes"]:
            ahead.add_metric([lane_status["lane"]], lane_status["queued_images"])
            wait.add_metric([lane_status["lane"]], lane_status["estimated_wait_seconds"])
        yield ahead
        yield wait

    def _database_figures(self, lanes: list[str]) -> Iterator[Metric]:
        oldest = GaugeMetricFamily(
            "atelier_lane_oldest_queued_age_seconds",
            "Age of the oldest queued job in each lane (0 when none is queued).",
            labels=["lane"],
        )
        now = time.time()
        for lane, created_at in lane_oldest_queued(lanes).items():
            oldest.add_metric([lane], max(now - created_at.timestamp(), 0) if created_at else 0)
        yield oldest
        max_wait = GaugeMetricFamily(
            "atelier_plan_max_wait_seconds",
            "Each plan's max_wait_seconds, by plan and lane (for the queue-age alert).",
            labels=["plan", "lane"],
        )
        for slug, lane, seconds in _plans():
            max_wait.add_metric([slug, lane], seconds)
        yield max_wait


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format, for a caller with METRICS_TOKEN or from METRICS_ALLOW_IPS."""
    if not metrics_access_allowed(request):
        body = error_body(
            code="metrics_forbidden",
            message="Metrics need the bearer token METRICS_TOKEN or an allowed address.",
            status_code=403,
        )
        return JsonResponse(body, status=403)
    payload, content_type = exposition([QueueCollector()])
    return HttpResponse(payload, content_type=content_type)
