"""The work queue at the broker seam: what `CeleryQueue` publishes (read back from
the embedded filesystem broker's folder), and that a broker that refuses the
connection is told as the service's own `BrokerUnavailable`, whatever the
transport raised."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from service.queue import BrokerUnavailable
from service.settings import Settings
from tasks.celery_app import DELIVER_TASK, PROCESS_TASK, make_celery
from tasks.queue import CeleryQueue
from tests.tasks.test_reprocess_tasks import published

AVATAR_ID = "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"
DELIVERY_ID = "whd_01JD3Z8G9YR3K2N5M6P7Q8W4TX"


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_avatar_and_a_webhook_delivery_reach_the_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    queue = CeleryQueue(make_celery(settings))
    queue.send(AVATAR_ID)
    queue.send_webhook(DELIVERY_ID)

    sent = sorted((m["task"], m["args"]) for m in published(settings))
    assert sent == [(PROCESS_TASK, [AVATAR_ID]), (DELIVER_TASK, [DELIVERY_ID])]


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:{port}/0", "amqp://guest:guest@127.0.0.1:{port}//"]
)
def test_a_broker_that_refuses_is_broker_unavailable(tmp_path: Path, url: str) -> None:
    settings = Settings(data_dir=tmp_path / "var", broker_url=url.format(port=closed_port()))
    queue = CeleryQueue(make_celery(settings))

    with pytest.raises(BrokerUnavailable):
        queue.send(AVATAR_ID)
    with pytest.raises(BrokerUnavailable):
        queue.send_webhook(DELIVERY_ID)
    assert not queue.ping()
