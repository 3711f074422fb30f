"""Celery publishes through config.broker's transport: kombu's Redis transport with one
client per channel, where kombu builds a client for every message."""

from __future__ import annotations

from config.broker import Transport
from config.celery import app

QUEUE = "atelier-test-broker"


def test_tickets_go_out_through_one_client_and_all_arrive() -> None:
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "config.broker:Transport"
        assert isinstance(connection.transport, Transport)
        channel = connection.default_channel
        client = channel._create_client()
        client.delete(QUEUE)
        for n in range(3):
            app.send_task("generation.run_job", args=[f"job-{n}"], queue=QUEUE)
        assert channel._create_client() is client
        assert client.llen(QUEUE) == 3
        client.delete(QUEUE)


def test_a_new_pool_gets_a_new_client() -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        first = channel._create_client()
        channel._pool = None  # what kombu does after a connection error
        second = channel._create_client()
        assert second is not first
        assert second.connection_pool is channel.pool
        assert second.ping()
