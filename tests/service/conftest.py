"""Service-layer fixtures: the real face models (loaded once), sample photos, a
broker fake at the enqueue seam, Services on the embedded defaults (SQLite
file, local storage) or on the real components (PostgreSQL, SeaweedFS), and a
real HTTP server for URL uploads."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline import FaceModels
from pipeline.errors import AvatarPrepError
from sample_images import SAMPLES
from service.avatars import ImageInput
from service.domain import Avatar
from service.queue import BrokerUnavailable
from service.registry import upgrade
from service.runtime import Services
from service.settings import Plan, Settings


def sample(name: str) -> bytes:
    """The bytes of a file in sample_images/ (see its README for what each shows)."""
    path = SAMPLES / name
    assert path.is_file(), f"sample_images/{name} is missing; run make_samples.py"
    return path.read_bytes()


@dataclass
class FakeBroker:
    """The enqueue seam: records the ids sent; `down = True` makes it refuse like
    an unreachable broker."""

    sent: list[str] = field(default_factory=list)
    down: bool = False

    def ping(self) -> bool:
        return not self.down

    def send(self, avatar_id: str) -> None:
        if self.down:
            raise BrokerUnavailable("broker unreachable (test)")
        self.sent.append(avatar_id)


def account(services: Services, name: str, plan: Plan = "paid") -> str:
    """A new account (with a key) named `name`; its id."""
    _, key = services.keys.create(name, plan)
    return services.keys.authenticate(key).id


def upload(services: Services, account_id: str, data: bytes, **options: Any) -> tuple[Avatar, bool]:
    """`avatars.create` of `data` as a file upload (options: name, user_exclusive, ...)."""
    return services.avatars.create(
        account_id,
        ImageInput(kind=options.pop("kind", "file"), data=data),
        name=options.pop("name", None),
        user_exclusive=options.pop("user_exclusive", True),
        metadata=options.pop("metadata", {}),
    )


def stored_keys(services: Services) -> list[str]:
    return services.storage.list_keys("avatars/")


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """The embedded defaults, inside this test's temporary folder."""
    return Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'var' / 'avatar-prep.db'}",
        storage_dir=tmp_path / "var" / "storage",
    )


def open_services(settings: Settings, broker: FakeBroker, models: FaceModels) -> Services:
    upgrade(settings)
    return Services.create(settings, broker, models)


@pytest.fixture
def local(local_settings: Settings, broker: FakeBroker, models: FaceModels) -> Iterator[Services]:
    """Services on SQLite and local storage, with the fake broker."""
    services = open_services(local_settings, broker, models)
    yield services
    services.close()


@pytest.fixture
def local_with(
    local_settings: Settings, broker: FakeBroker, models: FaceModels
) -> Iterator[Callable[..., Services]]:
    """`local_with(setting=value, ...)`: services like `local` (SQLite, local storage,
    the fake broker) on `local_settings` with the settings named changed, opened when
    called, so a test may first prepare their folder; each is closed after the test,
    whether it passed or not."""
    opened: list[Services] = []

    def open_with(**changed: Any) -> Services:
        services = open_services(local_settings.model_copy(update=changed), broker, models)
        opened.append(services)
        return services

    yield open_with
    for services in opened:
        services.close()


def assert_nothing_made(services: Services, broker: FakeBroker, account_id: str) -> None:
    """The account has no avatar, and nothing was sent to the workers."""
    listed = services.avatars.list(account_id, limit=10, starting_after=None, status=None)
    assert listed == ([], False)
    assert broker.sent == []


@contextmanager
def refused(
    services: Services,
    broker: FakeBroker,
    account_id: str,
    error: type[AvatarPrepError],
    code: str,
) -> Iterator[pytest.ExceptionInfo[AvatarPrepError]]:
    """The block raises `error` with `code` and makes nothing
    (`assert_nothing_made`); gives the raised error, to be read after the block."""
    with pytest.raises(error) as info:
        yield info
    assert info.value.code == code
    assert_nothing_made(services, broker, account_id)


@pytest.fixture
def real(service_settings: Settings, broker: FakeBroker, models: FaceModels) -> Iterator[Services]:
    """Services on PostgreSQL and SeaweedFS, with the fake broker."""
    services = Services.create(service_settings, broker, models)
    yield services
    services.close()


class ImageServer(http.server.ThreadingHTTPServer):
    """A real HTTP server on loopback serving `files` (path -> bytes); `/status/N`
    answers HTTP N."""

    # The stdlib's backlog is 5; concurrent clients past it see their handshake
    # dropped and retried a second later.
    request_queue_size = 64

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.files = files
        self.daemon_threads = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            status, body = int(self.path.removeprefix("/status/")), b"status page"
        elif self.path in self.server.files:
            status, body = 200, self.server.files[self.path]
        else:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    """Serves the sample photos at /<file name>, and a web page at /page.html."""
    files = {f"/{p.name}": p.read_bytes() for p in SAMPLES.iterdir() if p.is_file()}
    files["/page.html"] = b"<!doctype html><html><body>not an image</body></html>"
    server = ImageServer(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
