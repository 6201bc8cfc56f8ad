"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that records every
POST (path, headers, body, when, what it answered) and answers each path with the
statuses it was told, in order, then 200. Signatures are verified by the tests,
with the `standardwebhooks` package: an implementation that is not ours."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

# Guards against a hung test, not a timing assertion.
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, once `standardwebhooks` accepts its signature with `secret`
        (it raises otherwise, and also checks the timestamp is recent)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    planned = receiver._answers.get(self.path, [])
                    status = planned.pop(0) if planned else 200
                    receiver.received.append(
                        Received(self.path, dict(self.headers), body, time.monotonic(), status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next POSTs to `path` with `statuses`, in order (then 200)."""
        with self._lock:
            self._answers.setdefault(path, []).extend(statuses)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(
        self, path: str, until: Callable[[list[Received]], bool], what: str
    ) -> list[Received]:
        """What `path` received, once `until` holds for it."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            got = self.at(path)
            if until(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {what}; received {[r.event for r in got]}")
            time.sleep(0.05)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
