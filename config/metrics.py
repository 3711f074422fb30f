"""Prometheus metrics: every counter and histogram the processes record, in one place.

prometheus-client in multiprocess mode: when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py
and `make run` set it), each process writes its values to memory-mapped files in that folder
and a scrape adds them up, so every gunicorn worker (and every Celery process sharing the
folder) is counted. Without it (tests in one process, `manage.py`) values live in memory.

Recording is O(1): a lock and a write to a memory-mapped file, no database, no network.
Labels are bounded: a route pattern, a method, a status, an error code, a plan's slug, a
lane. Never a workspace, user, key or job id.

What the queue looks like (depth, oldest job, live workers) is not recorded here: it is read
when Prometheus scrapes (generation/metrics.py), from the same cheap figures the status API
uses.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if _folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_folder, exist_ok=True)  # a process started before anyone made it

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "atelier_http_requests",
    "HTTP requests answered by Django, by route pattern, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "atelier_http_request_duration_seconds",
    "Time Django took to answer, by route pattern and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_SHED = Counter(
    "atelier_http_shed",
    "Requests the front door answered itself before Django (503 overloaded, 413 too large).",
    ["reason"],
)
WEB_CONNECTIONS_REBALANCED = Counter(
    "atelier_web_connections_rebalanced",
    "Keep-alive connections a web process closed after a response because it held more than "
    "its share of all web processes' connections (config/web_balance.py).",
)
ADMISSIONS = Counter(
    "atelier_admissions",
    "Requests for images by outcome (admitted, replayed, refused), error code and plan.",
    ["outcome", "code", "plan"],
)
JOBS_FINISHED = Counter(
    "atelier_jobs_finished",
    "Jobs that ended, by status (succeeded, failed, cancelled) and error code.",
    ["status", "code"],
)
RENDER_SECONDS_PER_IMAGE = Histogram(
    "atelier_render_seconds_per_image",
    "GPU seconds per image of each rendered batch.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
BATCH_IMAGES = Histogram(
    "atelier_batch_images",
    "Images per pipeline call.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
OOM_BACKOFFS = Counter("atelier_oom_backoffs", "Batches halved after a GPU out-of-memory error.")
SWEEPER_REQUEUED = Counter(
    "atelier_sweeper_requeued", "Jobs the sweeper put back in the queue (heartbeat stopped)."
)
SWEEPER_FAILED = Counter(
    "atelier_sweeper_failed", "Jobs the sweeper failed and refunded (attempts or deadline)."
)
TICKETS_RESENT = Counter(
    "atelier_tickets_resent", "Tickets the sweeper sent again for queued jobs nobody took."
)
QUOTA_IMAGES = Counter(
    "atelier_quota_images",
    "Images of quota by movement: reserved, captured, released.",
    ["kind"],
)
STRIPE_EVENTS = Counter(
    "atelier_stripe_events",
    "Stripe webhook deliveries by event type and outcome "
    "(succeeded, failed, retry, duplicate, rejected).",
    ["type", "outcome"],
)

# Per worker process (a GPU each), kept while the process lives ("liveall": one series per
# process id, which is bounded by the processes running, not by tenants).
GPU_MEMORY = Gauge(
    "atelier_gpu_memory_bytes",
    "GPU memory held by a worker process (CUDA only), after its last batch.",
    multiprocess_mode="liveall",
)
GPU_UTILISATION = Gauge(
    "atelier_gpu_utilisation_ratio",
    "Utilisation of a worker's GPU (0-1) after its last batch (CUDA with NVML only).",
    multiprocess_mode="liveall",
)

# Stripe's event types are many; only those the platform handles get a label of their own.
STRIPE_EVENT_TYPES = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)


def stripe_event_type_label(event_type: str) -> str:
    return event_type if event_type in STRIPE_EVENT_TYPES else "other"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The text Prometheus reads: every process's values (multiprocess mode) or this
    process's, plus the collectors in `extra`, read now."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    """The process's own registry, seen from a registry of its own (to add collectors)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self):  # type: ignore[no-untyped-def]
        return self.registry.collect()


def metrics_access_allowed(request: HttpRequest) -> bool:
    """Whether a caller may read /metrics: the bearer token METRICS_TOKEN, or an address
    in METRICS_ALLOW_IPS (addresses or networks; loopback by default)."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    bearer = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    if token and bearer and hmac.compare_digest(bearer.encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOW_NETWORKS)


def worker_metrics_serve(*, port: int, addr: str) -> None:
    """A Celery worker's own /metrics (WORKER_METRICS_PORT), from a thread: its values, or
    those of every process sharing its PROMETHEUS_MULTIPROC_DIR. No token: bind it to an
    address only Prometheus reaches (loopback by default)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    start_http_server(port, addr=addr, registry=registry)
