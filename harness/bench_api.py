"""`avatar-prep bench-api`: load on the running service, through its HTTP API.

    avatar-prep bench-api --url http://127.0.0.1:8000 --key ak_live_... -n 40 -c 4
    avatar-prep bench-api --start --workers 1,2 -n 40 -c 4

For each photo (a 1.4 MP and a 12 MP JPEG from sample_images/):

1. one upload at a time (`--sequential`), each right after a `prepare()` of the
   same photo in this process (the pipeline alone): accept latency and
   upload-to-ready with nothing queued; upload-to-ready minus the pipeline's
   time of the same round is what the service adds (HTTP, storage, registry,
   broker, worker hand-off). Pairing the rounds keeps a busy machine from
   skewing the difference;
2. `-n` uploads sent by `-c` concurrent clients as fast as they are accepted:
   accept latency, upload-to-ready (queueing included) and throughput;
3. with `--start`, over the `-n` uploads of step 2: CPU milliseconds per upload
   of the API process and of the worker (main, pool and beat processes) from
   their own counters (/proc), the worker's minus its time inside prepare()
   (counted by the pool processes, read from /metrics): what the service costs
   around the pipeline, steadier than wall time on a busy machine;
4. session creation (POST /v1/sessions) by avatar id and inline by image URL,
   p50/p99: `harness/bench_sessions.py` says how (inline URLs need loopback URLs
   allowed: `--start` allows them, a `--url` service must).

Every upload carries different bytes (a JPEG comment with a random token), so
none is answered by dedupe. Upload-to-ready is the avatar's `ready_at` (server
clock) minus the moment the request started (this machine's clock): run on
the service's host, or with synced clocks. The avatars made are deleted at the
end. `--start` runs the API and a worker per `--workers` count itself, on the
settings of the environment (AVATAR_PREP_*; with none, the embedded defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from harness import bench_sessions, local_stack
from harness.bench_sessions import SessionRun, print_session_results
from harness.load import Reference, added_ms, paired_cells, percentile, unique_jpeg
from harness.process_cpu import CpuPerUpload, CpuProbe
from pipeline import FaceModels
from sample_images import BENCH_PHOTOS, SAMPLES
from service.settings import Settings
from service.status import FINISHED, UNFINISHED, AvatarStatus

POLL_SECONDS = 0.25
# 40 12 MP photos on one worker take well under a minute.
FINISH_TIMEOUT_SECONDS = 180.0


def run(args: argparse.Namespace) -> int:
    kinds = [k.strip() for k in args.images.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in BENCH_PHOTOS]
    if unknown or args.n < 1 or args.c < 1 or args.sequential < 1:
        print(
            f"bad arguments: images must be among {', '.join(BENCH_PHOTOS)}; -n, -c, "
            "--sequential at least 1"
        )
        return 2
    if args.url and not args.key:
        print("--url needs --key")
        return 2
    photos = {kind: (SAMPLES / BENCH_PHOTOS[kind]).read_bytes() for kind in kinds}
    # The session runs serve their inline images from this process on 127.0.0.1:
    # the stack `--start` runs must fetch them (a `--url` service decides for itself).
    settings = Settings().model_copy(update={"allow_loopback_urls": True})
    with FaceModels.load() as models:
        reference = Reference(models, settings.pipeline)
        if args.url:
            results = [measure(args.url, args.key, photos, reference, args, None, None)]
        else:
            counts = [int(w) for w in args.workers.split(",")]
            results = list(measure_started(settings, photos, reference, args, counts))
    print_results([runs for runs, _ in results])
    print_session_results([s for _, sessions in results for s in sessions])
    return 0


# --- what is measured --------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    started: float  # wall clock, seconds since the epoch
    accept_ms: float
    status: int
    avatar_id: str | None


@dataclass(frozen=True)
class Run:
    """One photo at one concurrency: accept latencies, upload-to-ready times."""

    workers: int | None
    kind: str
    clients: int
    accept_ms: list[float]
    ready_ms: list[float]
    pipeline_ms: list[float]  # one upload at a time: the pipeline alone, same rounds
    failed: int
    refused: int
    seconds: float  # first request start to last avatar ready
    cpu: CpuPerUpload | None = None  # with --start, concurrent runs only

    @property
    def throughput(self) -> float:
        return len(self.ready_ms) / self.seconds if self.seconds > 0 else 0.0

    @property
    def added_ms(self) -> list[float]:
        """Upload-to-ready minus the pipeline alone, round by round; empty when the
        rounds are not paired (concurrent runs, or an upload that did not get ready)."""
        return added_ms(self.ready_ms, self.pipeline_ms)


def upload(client: httpx.Client, data: bytes) -> Upload:
    started = time.time()
    t0 = time.perf_counter()
    response = client.post(
        "/v1/avatars/upload-face", files={"file": ("bench.jpg", unique_jpeg(data), "image/jpeg")}
    )
    accept_ms = (time.perf_counter() - t0) * 1000
    avatar_id = response.json().get("id") if response.status_code == 202 else None
    return Upload(started, accept_ms, response.status_code, avatar_id)


def finished_avatars(
    client: httpx.Client, ids: set[str], *, poll_seconds: float
) -> dict[str, dict[str, Any]]:
    """The avatars of `ids` once every one is ready or failed, polling the list
    endpoint: one avatar of this account still queued or processing ends a poll
    (two one-row reads), and the whole list is read only once none is, so polling
    stays light next to the workers it measures and the API CPU it counts. The
    times come from the avatars, not from polling."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
    while len(done) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids) - len(done)} uploads unfinished after the time-out")
        time.sleep(poll_seconds)
        if any_unfinished(client):
            continue
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["starting_after"] = cursor
            page = client.get("/v1/avatars", params=params).json()
            for avatar in page["data"]:
                if avatar["id"] in ids and avatar["status"] in FINISHED:
                    done[avatar["id"]] = avatar
            if not page["has_more"] or not page["data"]:
                break
            cursor = page["data"][-1]["id"]
    return done


def any_unfinished(client: httpx.Client) -> bool:
    """Whether any avatar of this account is still queued or processing."""
    for status in UNFINISHED:
        page = client.get("/v1/avatars", params={"status": status, "limit": 1}).json()
        if page["data"]:
            return True
    return False


def one_at_a_time(
    client: httpx.Client,
    reference: Reference,
    data: bytes,
    count: int,
    kind: str,
    workers: int | None,
) -> Run:
    """`count` rounds of: the pipeline alone here, then one upload, finished
    before the next round starts (the worker is idle while this process runs
    the pipeline, so neither slows the other)."""
    uploads, avatars, pipeline_ms = [], {}, []
    for _ in range(count):
        pipeline_ms.append(reference.time_ms(data))
        sent = upload(client, data)
        uploads.append(sent)
        if sent.avatar_id:
            avatars.update(finished_avatars(client, {sent.avatar_id}, poll_seconds=0.05))
    return summarise(client, uploads, avatars, 1, kind, workers, pipeline_ms)


def concurrent(
    client: httpx.Client,
    data: bytes,
    count: int,
    clients: int,
    kind: str,
    workers: int | None,
    cpu: CpuProbe | None,
) -> Run:
    """`count` uploads from `clients` concurrent clients, then wait for them all;
    with `cpu`, the processes' CPU per upload from the first upload until every
    one finished (the deletes afterwards not included)."""
    before = cpu.sample(client) if cpu is not None else None
    with ThreadPoolExecutor(max_workers=clients) as pool:
        uploads = list(pool.map(lambda _: upload(client, data), range(count)))
    ids = {u.avatar_id for u in uploads if u.avatar_id}
    avatars = finished_avatars(client, ids, poll_seconds=POLL_SECONDS)
    used = None
    if cpu is not None and before is not None:
        used = CpuPerUpload.between(before, cpu.sample(client), len(ids))
    run = summarise(client, uploads, avatars, clients, kind, workers, [])
    return dataclasses.replace(run, cpu=used)


def summarise(
    client: httpx.Client,
    uploads: list[Upload],
    avatars: dict[str, dict[str, Any]],
    clients: int,
    kind: str,
    workers: int | None,
    pipeline_ms: list[float],
) -> Run:
    """The figures of one run, in upload order; deletes its avatars."""
    accepted = {u.avatar_id: u for u in uploads if u.avatar_id}
    ready = [
        (_epoch(avatars[u.avatar_id]["ready_at"]) - u.started) * 1000
        for u in uploads
        if u.avatar_id and avatars[u.avatar_id]["status"] == AvatarStatus.READY
    ]
    last = max((_epoch(a["updated_at"]) for a in avatars.values()), default=0.0)
    first = min((u.started for u in uploads), default=0.0)
    for avatar_id in accepted:
        client.delete(f"/v1/avatars/{avatar_id}")
    return Run(
        workers=workers,
        kind=kind,
        clients=clients,
        accept_ms=[u.accept_ms for u in uploads if u.avatar_id],
        ready_ms=ready,
        # Paired with `ready` only when every round ended ready.
        pipeline_ms=pipeline_ms if len(ready) == len(pipeline_ms) else [],
        failed=sum(1 for a in avatars.values() if a["status"] == AvatarStatus.FAILED),
        refused=sum(1 for u in uploads if not u.avatar_id),
        seconds=max(0.0, last - first),
    )


def measure(
    url: str,
    key: str,
    photos: dict[str, bytes],
    reference: Reference,
    args: argparse.Namespace,
    workers: int | None,
    cpu: CpuProbe | None,
) -> tuple[list[Run], list[SessionRun]]:
    runs, sessions = [], []
    limits = httpx.Limits(max_connections=args.c + 2)
    with (
        httpx.Client(
            base_url=url, headers={"X-API-Key": key}, timeout=60.0, limits=limits
        ) as client,
        bench_sessions.PhotoServer.running(photos) as server,
    ):
        for kind, data in photos.items():
            reference.warm_up(data)
            one_at_a_time(client, reference, data, 1, kind, workers)  # warm-up, not reported
            runs.append(one_at_a_time(client, reference, data, args.sequential, kind, workers))
            runs.append(concurrent(client, data, args.n, args.c, kind, workers, cpu))
            sessions += bench_sessions.measure(
                client,
                server,
                reference,
                kind,
                data,
                count=args.n,
                clients=args.c,
                sequential=args.sequential,
                workers=workers,
            )
    return runs, sessions


def measure_started(
    settings: Settings,
    photos: dict[str, bytes],
    reference: Reference,
    args: argparse.Namespace,
    counts: list[int],
) -> Iterator[tuple[list[Run], list[SessionRun]]]:
    # Kept after the run: the place to look when an upload never finishes.
    log_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    print(f"logs of the API and workers: {log_dir}")
    local_stack.run(settings, "db", "upgrade")
    key = local_stack.create_key(settings, f"bench-{secrets.token_hex(4)}", "paid")
    api, url = local_stack.start_api(settings, log_dir / "api.log")
    try:
        for count in counts:
            with _worker(settings, log_dir, count, local_stack.start_worker) as worker:
                cpu = CpuProbe(api_pid=api.pid, worker_pid=worker.pid)
                yield measure(url, key, photos, reference, args, count, cpu)
    finally:
        api.stop()


@contextmanager
def _worker(
    settings: Settings, log_dir: Path, count: int, start: Callable[..., Any]
) -> Iterator[Any]:
    worker = start(settings, log_dir / f"worker-{count}.log", concurrency=count, beat=True)
    try:
        yield worker
    finally:
        worker.stop()


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


# --- report --------------------------------------------------------------------


def print_results(results: list[list[Run]]) -> None:
    print()
    print(
        "workers photo  clients    n  accept p50/p99 ms  ready p50/p99 ms  images/s  "
        "pipeline p50 ms  added p50 ms  failed  refused"
    )
    for runs in results:
        for r in runs:
            one_by_one = r.clients == 1
            print(
                f"{'-' if r.workers is None else r.workers:>7} {r.kind:>5} "
                f"{'1 by 1' if one_by_one else r.clients:>8} {len(r.accept_ms):>4} "
                f"{percentile(r.accept_ms, 50):9.0f} /{percentile(r.accept_ms, 99):5.0f} "
                f"{percentile(r.ready_ms, 50):9.0f} /{percentile(r.ready_ms, 99):6.0f} "
                f"{'' if one_by_one else f'{r.throughput:.2f}':>9} "
                f"{paired_cells(r.pipeline_ms, r.added_ms, one_by_one)} "
                f"{r.failed:>7} {r.refused:>8}"
            )
    print()
    print(
        "ready = upload-to-ready. pipeline = prepare() alone in this process. added = "
        "ready minus pipeline,\nround by round (one upload at a time): what the service "
        "adds (HTTP, storage, registry, broker, hand-off)."
    )
    print_cpu([r for runs in results for r in runs if r.cpu is not None])


def print_cpu(runs: list[Run]) -> None:
    """CPU per upload of the concurrent runs (only a stack started here has them)."""
    if not runs:
        return
    print()
    print("cpu per upload: workers photo  clients    n  api ms  worker ms  outside ms  pipeline ms")
    for r in runs:
        assert r.cpu is not None
        print(
            f"{'-' if r.workers is None else r.workers:>23} {r.kind:>5} {r.clients:>8} "
            f"{len(r.accept_ms):>4} {r.cpu.api_ms:7.1f} {r.cpu.worker_ms:10.1f} "
            f"{r.cpu.outside_ms:11.1f} {r.cpu.pipeline_ms:12.1f}"
        )
    print()
    print(
        "CPU ms per upload over the concurrent run, from the processes' own counters: api = "
        "the API\nprocess, worker = the worker's processes minus their time inside prepare() "
        "(pipeline),\noutside = api + worker: what the service costs around the pipeline."
    )
