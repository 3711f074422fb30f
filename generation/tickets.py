"""Tickets: the Celery messages that wake GPU workers. A ticket is a doorbell: the worker that
takes one claims whatever the database says runs next in its lanes (the job id it carries
is for the logs), and keeps claiming while there is work, for up to DRAIN_SECONDS; one that
stops at that deadline with work left rings again. So a lane needs a few waiting tickets,
not one per queued job: admission rings only while fewer than LANE_TICKETS_MAX wait in the
lane's broker queue (one LLEN). A million queued jobs hold a few kilobytes of the broker's
memory, not a kilobyte each, and a submission to a busy lane skips Celery's send.

A lost ticket loses no work: the sweeper sends tickets for a lane whose broker queue holds
none while queued jobs wait there (a send that failed while Redis was away, a Redis that
lost its data).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from billing.models import Lane
from generation.models import Job
from generation.queue import redis_client

logger = logging.getLogger(__name__)

# What a broker that cannot be reached raises, through kombu or redis-py directly.
BROKER_ERRORS = (BrokerError, RedisError, OSError)


def lane_queue(lane: str) -> str:
    return f"gpu.{lane}"


def ticket_send(*, job_id: Any, lane: str) -> bool:
    """Send a ticket; False (logged) when the broker cannot take it: the job stays queued
    in the database and tickets_resend sends another once the broker is back."""
    try:
        current_app.send_task("generation.run_job", args=[str(job_id)], queue=lane_queue(lane))
    except BROKER_ERRORS:
        logger.warning("Could not send a ticket for job %s; the sweeper will", job_id)
        return False
    return True


def ticket_ring(*, job_id: Any, lane: str) -> bool:
    """Wake a worker for `lane`: send a ticket unless LANE_TICKETS_MAX already wait there
    (each wakes a worker that drains the lane: more would only wait behind them). False
    (logged) when the broker cannot take it; the sweeper sends one once it is back."""
    try:
        waiting = lane_tickets_waiting(lane)
    except BROKER_ERRORS:
        waiting = 0  # let the send find out, and log it
    if waiting >= settings.LANE_TICKETS_MAX:
        return True
    return ticket_send(job_id=job_id, lane=lane)


def lane_tickets_waiting(lane: str) -> int:
    """Tickets waiting in the lane's broker queue (not counting those being worked on).

    kombu's Redis transport keeps a queue's messages of the default priority, as tickets are
    sent, in a list named after the queue, and the broker is REDIS_URL: one LLEN (0 for a
    queue nobody declared yet)."""
    return int(redis_client().llen(lane_queue(lane)))


def tickets_resend(*, at: datetime | None = None) -> int:
    """For each lane whose broker queue is empty while jobs have waited there longer than
    TICKET_RESEND_AFTER, send tickets for the oldest few (TICKET_RESEND_BATCH). Workers
    claim in fair order whatever the ticket names, and one stopped at its deadline with work
    left rings again, so a few tickets restart a lane. Returns the tickets sent."""
    stale_before = (at or timezone.now()) - timedelta(seconds=settings.TICKET_RESEND_AFTER)
    sent = 0
    for lane in Lane.values:
        waiting = Job.objects.filter(
            status=Job.Status.QUEUED, lane=lane, created_at__lt=stale_before
        ).order_by("created_at")
        oldest = list(waiting.values_list("pk", flat=True)[: settings.TICKET_RESEND_BATCH])
        if not oldest:
            continue
        try:
            if lane_tickets_waiting(lane) > 0:
                continue
        except BROKER_ERRORS:
            logger.warning("The broker is unreachable; tickets for %s wait for it", lane)
            return sent
        sent += sum(ticket_send(job_id=job_id, lane=lane) for job_id in oldest)
    return sent
