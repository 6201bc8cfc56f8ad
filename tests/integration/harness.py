"""What the integration tests drive and inspect: a running API + worker pair
(`Stack`), a local HTTP server for URL uploads (`ImageServer`), and the
end-of-test check that nothing is half-made (`assert_nothing_orphaned`)."""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import select

from harness.local_stack import Child, create_key, start_api, start_worker
from sample_images import SAMPLES
from service.keys import KeyService
from service.registry import AvatarRow, Registry, StorageDeletionRow
from service.settings import Plan, Settings
from tests.services import SeaweedS3

FINISHED = ("ready", "failed")
# Guards against a hung test, not timing assertions: a 12 MP photo takes about a
# second; retries after a storage outage take up to a minute.
FINISH_TIMEOUT_SECONDS = 120.0


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@dataclass
class Stack:
    """A real API (uvicorn) and, unless `worker` is None, a real Celery worker,
    both subprocesses started from `settings`."""

    settings: Settings
    base_url: str
    api: Child
    worker: Child | None

    @classmethod
    @contextmanager
    def running(
        cls, settings: Settings, log_dir: Path, *, concurrency: int = 1, worker: bool = True
    ) -> Iterator[Stack]:
        api, base_url = start_api(settings, log_dir / "api.log")
        started: Child | None = None
        try:
            if worker:
                started = start_worker(
                    settings, log_dir / "worker.log", concurrency=concurrency, beat=True
                )
            yield cls(settings, base_url, api, started)
        finally:
            if started is not None:
                started.stop()
            api.stop()

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": key}, timeout=60.0)

    def new_key(self, account: str, plan: Plan = "paid") -> str:
        """A key of a new account, made in this process (quicker than the command
        line, which `cli_key` uses)."""
        registry = Registry(self.settings)
        try:
            return KeyService(registry).create(account, plan)[1]
        finally:
            registry.close()

    def cli_key(self, account: str, plan: Plan = "paid") -> str:
        """A key made by `avatar-prep keys create`, as an operator would."""
        return create_key(self.settings, account, plan)

    def logs(self) -> str:
        parts = [self.api.log()] + ([self.worker.log()] if self.worker else [])
        return "\n".join(parts)

    @contextmanager
    def worker_frozen(self) -> Iterator[None]:
        """The worker and its children stopped (SIGSTOP) inside the block, so work sent
        meanwhile stays unfinished until it ends (SIGCONT)."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.worker.pid, signal.SIGCONT)

    def finished(self, client: httpx.Client, avatar_id: str) -> dict[str, Any]:
        """The avatar once it is ready or failed (polled through the API)."""
        deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
        while True:
            response = client.get(f"/v1/avatars/{avatar_id}")
            assert response.status_code == 200, response.text
            avatar: dict[str, Any] = response.json()
            if avatar["status"] in FINISHED:
                return avatar
            if time.monotonic() > deadline:
                raise AssertionError(f"{avatar_id} still {avatar['status']}\n{self.logs()[-6000:]}")
            time.sleep(0.1)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error object of `response`, asserting its status, code and request id."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def assert_nothing_orphaned(settings: Settings, s3: SeaweedS3) -> dict[str, str]:
    """Every stored object belongs to an avatar row, every ready avatar has all
    of its objects, no avatar is left queued or processing and no deleted one's
    folder is left to empty (service/purge.py). Returns {avatar id: status} of
    every row."""
    statuses = avatar_statuses(settings)
    unfinished = {i: s for i, s in statuses.items() if s not in FINISHED}
    assert not unfinished, f"avatars left unfinished: {unfinished}"
    assert pending_deletions(settings) == []
    stored = s3.keys("avatars/", settings.s3_bucket)
    orphans = [key for key in stored if key.split("/")[1] not in statuses]
    assert not orphans, f"objects without an avatar row: {orphans}"
    for avatar_id, status in statuses.items():
        if status == "ready":
            have = {k.rsplit("/", 1)[1] for k in stored if k.split("/")[1] == avatar_id}
            assert have >= {"original", "1x1.jpg", "4x3.jpg", "3x4.jpg", "record.json"}, (
                avatar_id,
                have,
            )
    return statuses


def assert_public_jpeg(stack: Stack, url: str, size: tuple[int, int]) -> None:
    """`url` is on the stack's object store and answers, without the API key or any
    other credential, with a JPEG of `size` (width, height)."""
    assert url.startswith(stack.settings.s3_endpoint_url or "")
    fetched = httpx.get(url, timeout=10)
    assert fetched.status_code == 200
    image = Image.open(io.BytesIO(fetched.content))
    assert (image.format, image.size) == ("JPEG", size)


def pending_deletions(settings: Settings) -> list[str]:
    """The storage folders of deleted avatars not yet emptied, from the registry."""
    registry = Registry(settings)
    try:
        with registry.transaction() as session:
            return list(session.scalars(select(StorageDeletionRow.prefix)))
    finally:
        registry.close()


def avatar_statuses(settings: Settings) -> dict[str, str]:
    """{avatar id: status} of every avatar row, read from the registry directly."""
    registry = Registry(settings)
    try:
        with registry.transaction() as session:
            return {r.id: r.status for r in session.execute(select(AvatarRow.id, AvatarRow.status))}
    finally:
        registry.close()


class _Listening(ThreadingHTTPServer):
    # The stdlib's backlog is 5: 20 clients connecting at once overflow it, and the
    # dropped handshakes are retried a second later, past a test's connect timeout.
    request_queue_size = 64


class ImageServer:
    """A local HTTP server for URL uploads, on 127.0.0.1:

    - `/<sample file name>`: that file of sample_images/;
    - `/redirect?to=<url>`: a 302 to `url`;
    - `/held/<sample>`: answers only after `release()`; `requested` is set once
      a request for it arrived (to stop a worker mid-task deterministically);
    - `silent_url`: a socket that accepts connections and never answers.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query.removeprefix("to="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/held/"):
                    server.requested.set()
                    server._released.wait(timeout=60)
                    path = path.removeprefix("/held")
                file = SAMPLES / path.lstrip("/")
                if "/" in path.lstrip("/") or not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = _Listening(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._silent = socket.socket()
        self._silent.bind(("127.0.0.1", 0))
        self._silent.listen(16)  # the kernel completes handshakes; nobody ever reads

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def silent_url(self) -> str:
        return f"http://127.0.0.1:{self._silent.getsockname()[1]}/portrait.jpg"

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._http.shutdown()
        self._http.server_close()
        self._silent.close()
