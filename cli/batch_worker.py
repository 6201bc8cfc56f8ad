"""What one `batch` worker process does: load the models once, then turn jobs
(one file each) into report rows.

Runs in the pool's child processes. The models are loaded by the pool
initializer in the child, never in the parent: the pool starts its children
with `spawn`, so nothing MediaPipe made (graphs, their threads) is ever forked.
"""

from __future__ import annotations

import hashlib
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2

from cli.report import Row
from cli.results import process_image_result
from pipeline import FaceModels, PipelineSettings, Prepared
from pipeline.errors import AvatarPrepError
from service.avatars import ImageInput
from service.domain import Avatar
from service.runtime import Services
from service.settings import Settings
from service.status import UNFINISHED, AvatarStatus


@dataclass(frozen=True)
class Upload:
    """Register each accepted file as an avatar of `account_id` through the
    service `settings` point at: the same store, registry and dedupe as an API
    upload."""

    settings: Settings
    account_id: str


@dataclass(frozen=True)
class Job:
    """One input file. `path` is relative to the batch root ('/'-separated), the
    report's key; the outputs go to `out_root / output`, with an overlay image
    when `overlay`."""

    source: Path
    path: str
    out_root: Path
    output: str
    overlay: bool = False
    upload: Upload | None = None


@dataclass
class _Worker:
    settings: PipelineSettings
    models: FaceModels | None
    init_error: str
    services: Services | None = None  # made on the first upload, once per process


_worker: _Worker | None = None  # this process's models, set by init_worker


def init_worker(settings: PipelineSettings) -> None:
    """Pool initializer, run once in each child process."""
    global _worker
    # Ctrl-C reaches the whole process group; the parent handles it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Parallelism is across processes, one per core; OpenCV's own threads would
    # only oversubscribe the cores.
    cv2.setNumThreads(1)
    try:
        _worker = _Worker(settings, FaceModels.load(), "")
    except Exception as exc:
        # Recorded on every row instead of killing the child, which the pool would
        # take for a crash on each file in turn.
        _worker = _Worker(settings, None, f"{type(exc).__name__}: {exc}")


def failed_row(job: Job, code: str, message: str, time_ms: float = 0.0, sha256: str = "") -> Row:
    """The row of a file that could not be run at all (verdict `error`)."""
    return Row(job.path, "error", code, message, "", round(time_ms, 1), sha256, job.output)


def process_job(job: Job) -> Row:
    """Read the file, run the pipeline, write its outputs; never raises for one
    bad file (an exception is that file's `error` row)."""
    start = time.perf_counter()
    if _worker is None or _worker.models is None:
        reason = _worker.init_error if _worker else "init_worker did not run"
        return failed_row(job, "worker.init_failed", f"the face models did not load: {reason}")
    try:
        data = job.source.read_bytes()
    except OSError as exc:
        return failed_row(job, "file.unreadable", f"cannot read the file: {exc.strerror}")
    try:
        out_dir = job.out_root / job.output
        record, prepared = process_image_result(
            data, _worker.models, _worker.settings, out_dir, overlay=job.overlay
        )
    except Exception as exc:  # a bug must cost this file, not the batch
        elapsed = (time.perf_counter() - start) * 1000
        sha256 = hashlib.sha256(data).hexdigest()
        return failed_row(job, "worker.exception", f"{type(exc).__name__}: {exc}", elapsed, sha256)
    row = row_from_record(job, record, data, (time.perf_counter() - start) * 1000)
    if job.upload is None or row.verdict != "accept":
        return row
    try:
        avatar = upload(_worker, job.upload, job.path, data, prepared)
    except AvatarPrepError as exc:  # storage or registry down: this file's error row
        elapsed = (time.perf_counter() - start) * 1000
        return failed_row(job, exc.code, f"upload failed: {exc.message}", elapsed, row.sha256)
    elapsed = round((time.perf_counter() - start) * 1000, 1)
    if avatar.status == AvatarStatus.FAILED and avatar.error is not None:
        return replace(
            row,
            verdict="error",
            code=avatar.error["code"],
            message=avatar.error["message"],
            time_ms=elapsed,
            avatar_id=avatar.id,
        )
    return replace(row, time_ms=elapsed, avatar_id=avatar.id)


def upload(
    worker: _Worker, target: Upload, path: str, data: bytes, prepared: Prepared | None = None
) -> Avatar:
    """Create the avatar of `data` the way the API does and process it here, in
    this process, with `worker`'s models (no broker involved). `prepared`, the
    pipeline's result the output folder was written from, is stored as the
    avatar's when it was made with the service's own pipeline settings, so the
    pipeline runs once per file. Returns the avatar: `ready`, or the
    existing one for bytes this account already sent."""
    if worker.services is None:
        # No broker: the avatar is processed right below, in this process.
        worker.services = Services.create(target.settings, no_broker, worker.models)
    avatars = worker.services.avatars
    avatar, _created = avatars.create(
        target.account_id,
        ImageInput("file", data=data, filename=path),
        name=Path(path).name,
        user_exclusive=True,
        metadata={},
    )
    if avatar.status in UNFINISHED:
        same_settings = target.settings.pipeline == worker.settings
        avatars.process(avatar.id, prepared if same_settings else None)
        avatar = avatars.get(target.account_id, avatar.id)
    return avatar


class NoBroker:
    """The work queue of batch uploads: nothing is sent; `upload` processes the
    avatar itself."""

    def send(self, avatar_id: str) -> None:
        del avatar_id

    def ping(self) -> bool:
        return True


no_broker = NoBroker()


def row_from_record(job: Job, record: dict[str, Any], data: bytes, time_ms: float) -> Row:
    source = record["source"]
    sha256 = source["sha256"] if source else hashlib.sha256(data).hexdigest()
    if record["verdict"] == "accept":
        code, message = "", ""
        warnings = ";".join(w["name"] for w in record["warnings"])
    else:
        code, message, warnings = record["error"]["code"], record["error"]["message"], ""
    return Row(
        job.path, record["verdict"], code, message, warnings, round(time_ms, 1), sha256, job.output
    )
