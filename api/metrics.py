"""Prometheus metrics: `GET /metrics` in the text exposition format.

What is exposed, and who counts it:

| metric (`avatar_prep_` ...) | labels | counted by |
| --- | --- | --- |
| `http_requests_total` | method, route, status | each API process (api/observe.py) |
| `http_request_duration_seconds` | method, route | each API process |
| `task_duration_seconds` | task, status | each worker process (tasks/observe.py) |
| `task_verdicts_total` | status, code | each worker process |
| `avatars` | status | the registry, read at scrape time |
| `avatars_failed` | code | the registry, read at scrape time |
| `queue_depth`, `queue_depth_limit` | | the registry / settings |
| `registry_up` | | whether that read worked |

`route` is the route's template (`/v1/avatars/{avatar_id}`), or `unmatched`,
so the number of series stays bounded whatever paths clients send.

Several processes, one scrape: `avatar-prep serve` and `avatar-prep worker`
set prometheus_client's `PROMETHEUS_MULTIPROC_DIR` to `<data_dir>/metrics`
before anything imports prometheus_client, so every API process (uvicorn
`--workers N`) and every worker pool process writes its counters to its own
file there, and `/metrics` of an API process sums the folder with
`MultiProcessCollector`. The worker's task durations and verdicts therefore
appear on the API of the same host, with nothing else to run or scrape. On a
deployment with workers on other hosts, each host's folder is summed by the
API there; the registry-derived gauges are global whichever API is scraped.
Without the variable (an app made inside a test process) the app counts in its
own `CollectorRegistry`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, SettingsDep
from service.codes import metric_label
from service.errors import TransientError
from service.runtime import Services
from service.stats import AvatarCounts, avatar_counts
from service.status import AvatarStatus

logger = logging.getLogger(__name__)

# Upper bounds in seconds: cheap routes answer in milliseconds, an upload with
# `wait` may take up to 30 s.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "unmatched"

router = APIRouter(tags=["operations"])


class HttpMetrics:
    """The API's request counter and latency histogram (api/observe.py feeds them)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "avatar_prep_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "avatar_prep_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class ApiMetrics:
    """One per app (`create_app`): where its counters live and how a scrape reads
    them. `multiprocess`: in the folder shared with the other processes of this host
    (PROMETHEUS_MULTIPROC_DIR), else in this app alone."""

    def __init__(self, multiprocess: bool) -> None:
        self._registry = CollectorRegistry()
        if multiprocess:
            # Values go to this process's file in the folder; the scrape sums all files.
            self.http = HttpMetrics(None)
            MultiProcessCollector(self._registry)
        else:
            self.http = HttpMetrics(self._registry)

    @classmethod
    def from_environment(cls) -> ApiMetrics:
        """Multiprocess mode exactly when prometheus_client itself is in it: it decides
        once, when imported, from PROMETHEUS_MULTIPROC_DIR (set by the CLI first)."""
        return cls(multiprocess=bool(getattr(values.ValueClass, "_multiprocess", False)))

    def render(self, counts: AvatarCounts | None, queue_limit: int) -> bytes:
        """The exposition text: the counters, then the registry-derived gauges
        (`counts` None: the registry could not be read; only `registry_up 0`)."""
        scrape = CollectorRegistry()
        scrape.register(_Families(list(_registry_families(counts, queue_limit))))
        return generate_latest(self._registry) + generate_latest(scrape)


class _Families:
    """A collector of metric families computed before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def _registry_families(counts: AvatarCounts | None, queue_limit: int) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "avatar_prep_registry_up", "Whether the registry answered the counts of this scrape."
    )
    up.add_metric([], 0 if counts is None else 1)
    yield up
    limit = GaugeMetricFamily(
        "avatar_prep_queue_depth_limit",
        "max_queue_depth: above this many unfinished avatars, uploads get 503 at_capacity.",
    )
    limit.add_metric([], queue_limit)
    yield limit
    if counts is None:
        return
    depth = GaugeMetricFamily(
        "avatar_prep_queue_depth", "Unfinished avatars (queued + processing) in the registry."
    )
    depth.add_metric([], counts.queue_depth)
    yield depth
    by_status = GaugeMetricFamily(
        "avatar_prep_avatars", "Avatars in the registry by status.", labels=["status"]
    )
    for status in AvatarStatus:
        by_status.add_metric([status], counts.by_status.get(status, 0))
    yield by_status
    failed = GaugeMetricFamily(
        "avatar_prep_avatars_failed",
        "Failed avatars in the registry by error code (the verdicts that stand).",
        labels=["code"],
    )
    by_label: dict[str, int] = {}
    for code, n in counts.failed_by_code.items():
        by_label[metric_label(code)] = by_label.get(metric_label(code), 0) + n
    for label, n in sorted(by_label.items()):
        failed.add_metric([label], n)
    yield failed
    pending = GaugeMetricFamily(
        "avatar_prep_storage_deletions_pending",
        "Deleted avatars whose stored objects storage has not yet removed; the sweeper "
        "retries them. Growing: storage refuses deletes.",
    )
    pending.add_metric([], counts.pending_deletions)
    yield pending


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Requests by route template and status, latency histograms, task durations "
    "and verdicts by code from the workers, avatars by status and the queue depth, in the "
    "Prometheus text format. Needs no key; keep it off the public network.",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "The Prometheus text exposition format (version 0.0.4).",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "# TYPE avatar_prep_queue_depth gauge\n"
                    "avatar_prep_queue_depth 3.0\n",
                }
            },
        },
    },
)
async def metrics(
    request: Request, services: ServicesDep, settings: SettingsDep
) -> PlainTextResponse:
    api_metrics: ApiMetrics = request.app.state.metrics
    body = await run_in_threadpool(_scrape, api_metrics, services, settings.max_queue_depth)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def _scrape(api_metrics: ApiMetrics, services: Services, queue_limit: int) -> bytes:
    try:
        counts: AvatarCounts | None = avatar_counts(services.registry)
    except TransientError as exc:
        logger.warning("metrics: registry counts unavailable (%s)", exc.code)
        counts = None
    return api_metrics.render(counts, queue_limit)
