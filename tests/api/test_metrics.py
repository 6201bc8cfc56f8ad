"""GET /metrics over the real service on its embedded defaults: requests by route
template and status, latency histograms, and the registry's counts (queue depth,
avatars by status, failed ones by code) read at scrape time. Task metrics from
real worker processes reaching the API's /metrics are in
tests/integration/test_limits.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import ApiMetrics
from pipeline.errors import AvatarPrepError
from sample_images import SAMPLES
from service.runtime import Services
from tests.api.conftest import open_client
from tests.api.embedded import Embedded, Sent, embedded_app, embedded_settings

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"
AVATAR = "/v1/avatars/{avatar_id}"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    with embedded_app(embedded_settings(tmp_path, max_queue_depth=50)) as e:
        yield e


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of an exposition text (parsed by prometheus_client)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template_and_status(embedded: Embedded) -> None:
    async with open_client(embedded.app, headers={"X-API-Key": embedded.paid_key}) as c:
        upload = await c.post(
            UPLOAD, files={"file": ("p.jpg", (SAMPLES / "accept_portrait.jpg").read_bytes())}
        )
        avatar_id = upload.json()["id"]
        for _ in range(3):
            assert (await c.get(f"/v1/avatars/{avatar_id}")).status_code == 200
        assert (await c.get("/v1/avatars/avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")).status_code == 404
        for n in range(5):  # paths no route matches: one series, whatever the path
            assert (await c.get(f"/no/such/{n}")).status_code == 404
        response = await c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    parsed = samples(response.text)
    total = "avatar_prep_http_requests_total"
    assert value(parsed, total, method="POST", route=UPLOAD, status="202") == 1
    assert value(parsed, total, method="GET", route=AVATAR, status="200") == 3
    assert value(parsed, total, method="GET", route=AVATAR, status="404") == 1
    assert value(parsed, total, method="GET", route="unmatched", status="404") == 5
    # No label anywhere carries a raw path or an id.
    for _, labels in parsed:
        for _, label in labels:
            assert "avat_" not in label and "/no/such" not in label
    count = "avatar_prep_http_request_duration_seconds_count"
    assert value(parsed, count, method="GET", route=AVATAR) == 4
    buckets = [
        (float(dict(labels)["le"]), v)
        for (name, labels), v in parsed.items()
        if name == "avatar_prep_http_request_duration_seconds_bucket"
        and dict(labels)["route"] == AVATAR
    ]
    assert max(buckets)[1] == 4  # the +Inf bucket holds every observation
    assert sorted(v for _, v in sorted(buckets)) == [v for _, v in sorted(buckets)]


async def test_queue_depth_and_verdicts_by_code_come_from_the_registry(
    embedded: Embedded,
) -> None:
    names = ["accept_portrait.jpg", "accept_astronaut.png", "progressive.jpg"]
    async with open_client(embedded.app, headers={"X-API-Key": embedded.paid_key}) as c:
        ids = [
            (await c.post(UPLOAD, files={"file": (n, (SAMPLES / n).read_bytes())})).json()["id"]
            for n in names
        ]
        embedded.services.avatars.fail(ids[0], AvatarPrepError("Two faces.", code="face.multiple"))
        parsed = samples((await c.get("/metrics")).text)
    assert value(parsed, "avatar_prep_queue_depth") == 2
    assert value(parsed, "avatar_prep_queue_depth_limit") == 50
    assert value(parsed, "avatar_prep_avatars", status="queued") == 2
    assert value(parsed, "avatar_prep_avatars", status="failed") == 1
    assert value(parsed, "avatar_prep_avatars", status="ready") == 0
    assert value(parsed, "avatar_prep_avatars_failed", code="face.multiple") == 1
    assert value(parsed, "avatar_prep_storage_deletions_pending") == 0
    assert value(parsed, "avatar_prep_registry_up") == 1


async def test_a_registry_that_is_down_still_gives_the_request_metrics(tmp_path: Path) -> None:
    # Port 9 (discard) is closed on test machines: every connection is refused at once.
    settings = embedded_settings(tmp_path).model_copy(
        update={
            "database_url": "postgresql+psycopg://postgres@127.0.0.1:9/none",
            "database_connect_timeout_seconds": 1.0,
        }
    )
    services = Services.create(settings, Sent())
    try:
        async with open_client(create_app(settings, services)) as c:
            assert (await c.get("/healthz")).status_code == 200
            response = await c.get("/metrics")
    finally:
        services.close()
    assert response.status_code == 200
    parsed = samples(response.text)
    assert value(parsed, "avatar_prep_registry_up") == 0
    assert ("avatar_prep_queue_depth", frozenset()) not in parsed
    total = "avatar_prep_http_requests_total"
    assert value(parsed, total, method="GET", route="/healthz", status="200") == 1


def test_each_app_counts_in_its_own_registry_outside_multiprocess_mode() -> None:
    first, second = ApiMetrics(multiprocess=False), ApiMetrics(multiprocess=False)
    first.http.observe("GET", "/healthz", 200, 0.01)
    assert "avatar_prep_http_requests_total" in first.render(None, 10).decode()
    assert 'route="/healthz"' not in second.render(None, 10).decode()
