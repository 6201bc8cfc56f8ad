"""Session creation under load: the POST /v1/sessions part of `avatar-prep bench-api`.

For each photo, after the upload runs:

1. by avatar id, one at a time (`--sequential` rounds: a session start's own
   latency when the avatar exists: auth, a registry read and a write, a
   presigned URL), then `-n` from `-c` concurrent clients (the API's
   throughput: on a machine of few cores, queueing for CPU dominates);
2. inline by image URL, one at a time (`--sequential` rounds, each right after a
   `prepare()` of the same photo here, as the upload runs pair them): request
   to 201 = fetch + pipeline + hand-offs, minus the pipeline alone = what the
   inline path adds;
3. inline by image URL, `-n` from `-c` concurrent clients (queueing included).

The URL images are served by this process on 127.0.0.1, with different bytes on
every request (a new avatar each time, never a dedupe hit), so the API must
allow loopback URLs: `--start` sets that for the stack it starts; a service
given with `--url` needs AVATAR_PREP_ALLOW_LOOPBACK_URLS=true, or every inline
request is refused (400 image.url_forbidden, counted as refused). Sessions are
stopped and the avatars made are deleted at the end.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from harness.load import Reference, added_ms, paired_cells, percentile, unique_jpeg

# A room the benchmark never joins; the session service stores it as given.
ROOM = {"platform": "livekit", "url": "wss://bench.invalid/room", "room_name": "bench-api"}


@dataclass(frozen=True)
class SessionRun:
    """Session starts of one photo, by id or inline by URL, at one concurrency."""

    workers: int | None
    kind: str
    source: Literal["id", "url"]
    clients: int
    latency_ms: list[float]  # request to 201, of the sessions that started
    pipeline_ms: list[float]  # one at a time by URL: the pipeline alone, same rounds
    refused: int  # any other answer
    seconds: float  # first request start to last answer

    @property
    def per_second(self) -> float:
        return len(self.latency_ms) / self.seconds if self.seconds > 0 else 0.0

    @property
    def added_ms(self) -> list[float]:
        """Request to 201 minus the pipeline alone, round by round; empty when the
        rounds are not paired (concurrent runs, or a round that did not start)."""
        return added_ms(self.latency_ms, self.pipeline_ms)


@dataclass(frozen=True)
class Answer:
    latency_ms: float
    session_id: str | None  # None: not started
    avatar_id: str | None  # the inline image's avatar, when one was made


class PhotoServer:
    """HTTP on 127.0.0.1: `/<kind>/<anything>` is the photo of `kind` with new bytes
    on every request (`unique_jpeg`)."""

    def __init__(self, photos: dict[str, bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind = self.path.strip("/").split("/")[0]
                if kind not in photos:
                    self.send_error(404)
                    return
                body = unique_jpeg(photos[kind])
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/{kind}/{secrets.token_hex(8)}.jpg"

    @classmethod
    @contextmanager
    def running(cls, photos: dict[str, bytes]) -> Iterator[PhotoServer]:
        server = cls(photos)
        thread = threading.Thread(target=server._http.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server._http.shutdown()
            server._http.server_close()


def start_session(client: httpx.Client, avatar: str) -> Answer:
    """POST /v1/sessions with `avatar` (an id or an image URL) as `avatar_id`."""
    t0 = time.perf_counter()
    response = client.post("/v1/sessions", json={"avatar_id": avatar, "room": ROOM})
    latency_ms = (time.perf_counter() - t0) * 1000
    body = response.json()
    if response.status_code == 201:
        return Answer(latency_ms, body["id"], body["avatar_id"])
    return Answer(latency_ms, None, body.get("error", {}).get("avatar_id"))


def measure(
    client: httpx.Client,
    server: PhotoServer,
    reference: Reference,
    kind: str,
    data: bytes,
    *,
    count: int,
    clients: int,
    sequential: int,
    workers: int | None,
) -> list[SessionRun]:
    """The three runs above for one photo; cleans up after itself."""
    ready = client.post(
        "/v1/avatars/upload-face",
        params={"wait": 30},
        files={"file": ("bench.jpg", unique_jpeg(data), "image/jpeg")},
    )
    if ready.status_code != 201:
        raise RuntimeError(f"the avatar for the by-id sessions did not get ready: {ready.text}")
    avatar_id = ready.json()["id"]
    answers: list[Answer] = []
    try:
        by_id_alone = [start_session(client, avatar_id) for _ in range(sequential)]
        by_id = _concurrent(client, [avatar_id] * count, clients)
        one_by_one: list[Answer] = []
        pipeline_ms = []
        for _ in range(sequential):
            pipeline_ms.append(reference.time_ms(data))
            one_by_one.append(start_session(client, server.url(kind)))
        inline = _concurrent(client, [server.url(kind) for _ in range(count)], clients)
        answers = by_id_alone + by_id[0] + one_by_one + inline[0]
        return [
            session_run(workers, kind, "id", 1, by_id_alone, _span(by_id_alone)),
            session_run(workers, kind, "id", clients, *by_id),
            session_run(workers, kind, "url", 1, one_by_one, _span(one_by_one), pipeline_ms),
            session_run(workers, kind, "url", clients, *inline),
        ]
    finally:
        for answer in answers:
            if answer.session_id:
                client.post(f"/v1/sessions/{answer.session_id}/stop")
        for made in {avatar_id} | {a.avatar_id for a in answers if a.avatar_id}:
            client.delete(f"/v1/avatars/{made}")


def _concurrent(
    client: httpx.Client, avatars: list[str], clients: int
) -> tuple[list[Answer], float]:
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(lambda avatar: start_session(client, avatar), avatars))
    return answers, time.perf_counter() - began


def _span(answers: list[Answer]) -> float:
    return sum(a.latency_ms for a in answers) / 1000


def session_run(
    workers: int | None,
    kind: str,
    source: Literal["id", "url"],
    clients: int,
    answers: list[Answer],
    seconds: float,
    pipeline_ms: list[float] | None = None,
) -> SessionRun:
    started = [a.latency_ms for a in answers if a.session_id]
    pipeline = pipeline_ms or []
    return SessionRun(
        workers=workers,
        kind=kind,
        source=source,
        clients=clients,
        latency_ms=started,
        # Paired with the latencies only when every round started a session.
        pipeline_ms=pipeline if len(started) == len(pipeline) else [],
        refused=len(answers) - len(started),
        seconds=seconds,
    )


def print_session_results(runs: list[SessionRun]) -> None:
    print()
    print(
        "sessions: workers photo  avatar_id  clients    n  201 p50/p99 ms  sessions/s  "
        "pipeline p50 ms  added p50 ms  refused"
    )
    for r in runs:
        one_by_one = r.clients == 1
        print(
            f"{'-' if r.workers is None else r.workers:>17} {r.kind:>5} {r.source:>10} "
            f"{'1 by 1' if one_by_one else r.clients:>8} {len(r.latency_ms):>4} "
            f"{percentile(r.latency_ms, 50):9.0f} /{percentile(r.latency_ms, 99):5.0f} "
            f"{'' if one_by_one else f'{r.per_second:.2f}':>11} "
            f"{paired_cells(r.pipeline_ms, r.added_ms, one_by_one)} "
            f"{r.refused:>8}"
        )
    print()
    print(
        "avatar_id = what the session was asked for: an avatar id, or an image URL prepared\n"
        "inline. 201 = request to the session's answer. added = that minus prepare() alone,\n"
        "round by round (one at a time): what the inline path adds (fetch, hand-offs, polling)."
    )
