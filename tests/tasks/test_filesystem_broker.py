"""The embedded broker under a consumer that polls as fast as it can while a
producer writes: every message arrives whole (kombu's own transport lets the
consumer take a message file before it is written)."""

from __future__ import annotations

import threading
from pathlib import Path

from kombu import Connection, Consumer, Message, Producer, Queue

from service.settings import Settings
from tasks.celery_app import make_celery

MESSAGES = 400


def test_a_polling_consumer_gets_every_message_whole(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path / "var"))
    assert app.conf.broker_transport == "tasks.filesystem_broker:Transport"
    options = {**app.conf.broker_transport_options, "polling_interval": 0}
    queue = Queue("stress", routing_key="stress")
    received: list[dict[str, int]] = []

    def produce() -> None:
        with Connection(
            app.conf.broker_url, transport=app.conf.broker_transport, transport_options=options
        ) as conn:
            producer = Producer(conn.default_channel)
            for n in range(MESSAGES):
                # Large enough that writing it is not instant.
                producer.publish(
                    {"n": n, "pad": "x" * 50_000},
                    routing_key="stress",
                    declare=[queue],
                    serializer="json",
                )

    def on_message(body: dict[str, int], message: Message) -> None:
        received.append(body)
        message.ack()

    with (
        Connection(
            app.conf.broker_url, transport=app.conf.broker_transport, transport_options=options
        ) as conn,
        Consumer(conn, [queue], callbacks=[on_message], accept=["json"]),
    ):
        producer = threading.Thread(target=produce)
        producer.start()
        while len(received) < MESSAGES:
            conn.drain_events(timeout=30)  # raises on a half-written message
        producer.join()
    assert sorted(m["n"] for m in received) == list(range(MESSAGES))
    leftovers = list((tmp_path / "var" / "broker" / "queue").iterdir())
    assert leftovers == []
