"""Publishing to RabbitMQ across a broker restart: the pooled connection is dead, the next kick must not be."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection

from core.tasks.broker import publisher
from tests.support.celery_cluster import RABBITMQ_URL, require_broker, wait_until
from tests.support.tcp_proxy import tcp_proxy


@pytest.mark.rabbitmq
def test_a_kick_after_a_broker_restart_goes_out_on_a_fresh_connection() -> None:
    """The pooled connection dies with the broker; the next publication used to fail on it ("connection reset
    by peer", its kick left for the next try or sweep) although the broker was back: now it is retried once."""
    require_broker(RABBITMQ_URL)
    queue = f"test-{uuid.uuid4().hex[:10]}-embedding"
    with Connection(RABBITMQ_URL) as connection, tcp_proxy("127.0.0.1", 5672) as proxy:  # type: ignore[no-untyped-call]
        channel = connection.default_channel

        def waiting() -> int:
            return int(channel.queue_declare(queue, passive=True).message_count)

        try:
            publish = publisher(f"amqp://guest:guest@127.0.0.1:{proxy.port}//", queue.removesuffix("embedding"))
            publish("embedding")
            wait_until(lambda: waiting() == 1, 10, "the first kick queued")
            proxy.cut()  # to the pooled connection, the broker went away and came back
            proxy.restore()
            publish("embedding")
            wait_until(lambda: waiting() == 2, 10, "the kick after the restart queued")
        finally:
            channel.queue_delete(queue)
