"""The API over the real service on its embedded defaults (a SQLite registry, a
storage folder), with real photos and the real pipeline. The only seam is
`enqueue`: here it runs `process` on a thread, as a worker would. What the
service decides (sniffed formats, pixel limits, URL addresses, dedupe, verdicts)
is checked as a client sees it. Real HTTP, a real worker process, Redis,
PostgreSQL and S3 are tests/integration's.
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from api.app import create_app
from api.schemas import Avatar, AvatarList
from pipeline import FaceModels
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tests.api.conftest import SAMPLES, open_client
from tests.api.test_errors import assert_envelope

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"


class ThreadWorker:
    """The enqueue seam: each id is processed on its own thread, like a worker."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.threads: list[threading.Thread] = []

    def ping(self) -> bool:
        return True

    def send(self, avatar_id: str) -> None:
        assert self.services is not None
        thread = threading.Thread(target=self.services.avatars.process, args=(avatar_id,))
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


@pytest.fixture
def real(settings: Settings, models: FaceModels) -> Iterator[Services]:
    upgrade(settings)
    worker = ThreadWorker()
    services = Services.create(settings, worker, models)
    worker.services = services
    yield services
    worker.join()
    services.close()


@pytest.fixture
async def client(settings: Settings, real: Services) -> AsyncIterator[httpx.AsyncClient]:
    _, key = real.keys.create("acme", "paid")
    async with open_client(create_app(settings, real), headers={"X-API-Key": key}) as c:
        yield c


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in Path(settings.storage_dir).rglob("*") if p.is_file())


async def upload_file(client: httpx.AsyncClient, name: str, wait: int = 30) -> httpx.Response:
    data = (SAMPLES / name).read_bytes()
    return await client.post(f"{UPLOAD}?wait={wait}", files={"file": (name, data)})


async def test_a_portrait_is_ready_within_wait(client: httpx.AsyncClient) -> None:
    response = await upload_file(client, "accept_portrait.jpg")
    assert response.status_code == 201, response.text
    avatar = response.json()
    Avatar.model_validate(avatar)  # the documented schema holds for a real one
    assert avatar["status"] == "ready"
    assert avatar["source"]["format"] == "jpeg"
    assert (avatar["source"]["width"], avatar["source"]["height"]) == (1200, 1200)
    assert set(avatar["face"]["landmarks"]) == {
        "left_eye",
        "right_eye",
        "nose",
        "mouth_left",
        "mouth_right",
    }
    for ratio, size in (("1:1", (512, 512)), ("4:3", (640, 480)), ("3:4", (480, 640))):
        info = avatar["images"][ratio]
        assert (info["width"], info["height"]) == size
        image = await client.get(info["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(image.content)).size == size


async def test_the_same_bytes_again_are_200_with_the_same_avatar(
    client: httpx.AsyncClient,
) -> None:
    first = await upload_file(client, "accept_portrait.jpg", wait=0)
    again = await upload_file(client, "accept_portrait.jpg", wait=0)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]


async def test_two_faces_are_rejected_within_wait(client: httpx.AsyncClient) -> None:
    response = await upload_file(client, "reject_multiple_faces.jpg")
    error = assert_envelope(response, 422, "face.multiple")
    assert error["param"] == "image"
    checks = error["checks"]
    assert isinstance(checks, list) and any(not c["passed"] for c in checks)
    avatar = (await client.get(f"/v1/avatars/{error['avatar_id']}")).json()
    Avatar.model_validate(avatar)
    AvatarList.model_validate((await client.get("/v1/avatars")).json())
    assert avatar["status"] == "failed"
    assert avatar["error"]["code"] == "face.multiple"
    assert_envelope(
        await client.get(f"/v1/avatars/{error['avatar_id']}/image"), 409, "avatar.failed"
    )


async def test_an_svg_is_415_and_leaves_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'
    response = await client.post(UPLOAD, files={"file": ("face.jpg", svg, "image/jpeg")})
    assert_envelope(response, 415, "image.unsupported_format")
    assert (await client.get("/v1/avatars")).json()["data"] == []
    assert stored_files(settings) == []


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no pixel data: the shape
    of a decompression bomb, which must be refused from its header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


async def test_a_decompression_bomb_is_413_from_its_header(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    bomb = png_header_only(30_000, 30_000)
    response = await client.post(UPLOAD, files={"file": ("bomb.png", bomb)})
    assert_envelope(response, 413, "image.too_many_pixels")
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://10.1.2.3/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://[::ffff:10.0.0.1]/a.jpg",
    ],
)
async def test_urls_to_non_public_addresses_are_400_forbidden(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(UPLOAD, json={"image": url})
    assert_envelope(response, 400, "image.url_forbidden")
    assert (await client.get("/v1/avatars")).json()["data"] == []


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "https://u:p@example.com/a.jpg"])
async def test_urls_of_the_wrong_form_are_400_invalid(client: httpx.AsyncClient, url: str) -> None:
    assert_envelope(await client.post(UPLOAD, json={"image": url}), 400, "image.url_invalid")


async def test_a_host_that_does_not_resolve_now_is_503_with_retry_after(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name may resolve on a retry (a DNS hiccup): not the final 422 of a verdict.
    def unresolvable(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    response = await client.post(UPLOAD, json={"image": "https://photos.example.com/a.jpg"})
    error = assert_envelope(response, 503, "image.fetch_failed")
    assert error["type"] == "at_capacity"
    assert response.headers["retry-after"] == "5"
    assert (await client.get("/v1/avatars")).json()["data"] == []


async def test_delete_removes_every_stored_object(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    avatar = (await upload_file(client, "accept_portrait.jpg")).json()
    assert stored_files(settings) != []
    assert (await client.delete(f"/v1/avatars/{avatar['id']}")).status_code == 204
    assert stored_files(settings) == []
    assert_envelope(await client.get(f"/v1/avatars/{avatar['id']}"), 404, "avatar.not_found")


async def test_readyz_checks_the_real_registry_and_storage(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": True, "storage": True}


async def test_the_lifespan_wires_the_embedded_defaults(settings: Settings) -> None:
    """create_app without services, as `avatar-prep serve` runs it: Services and the
    filesystem broker are made by the lifespan; an upload is stored and sent."""
    upgrade(settings)
    app: FastAPI = create_app(settings)
    async with open_client(app) as c:
        ready = await c.get("/readyz")
        key = app.state.services.keys.create("acme", "free")[1]
        data = (SAMPLES / "accept_portrait.jpg").read_bytes()
        made = await c.post(UPLOAD, files={"file": ("a.jpg", data)}, headers={"X-API-Key": key})
    assert ready.json()["checks"] == {"database": True, "storage": True, "broker": True}
    assert made.status_code == 202 and made.json()["status"] == "queued"
    queued = list((Path(settings.data_dir) / "broker" / "queue").iterdir())
    assert len(queued) == 1 and made.json()["id"].encode() in queued[0].read_bytes()


@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "shared"])
async def test_another_account_sees_a_shared_avatar_but_never_an_exclusive_one(
    settings: Settings, real: Services, client: httpx.AsyncClient, exclusive: bool
) -> None:
    # The real visibility rule, not a fake's: user_exclusive decides what others see.
    data = (SAMPLES / "gray.jpg").read_bytes()
    made = await client.post(
        UPLOAD,
        files={"file": ("gray.jpg", data)},
        data={"user_exclusive": str(exclusive).lower()},
    )
    assert made.status_code == 202, made.text
    avatar_id = made.json()["id"]
    _, other_key = real.keys.create("other-co", "paid")
    async with open_client(create_app(settings, real), headers={"X-API-Key": other_key}) as other:
        seen = await other.get(f"/v1/avatars/{avatar_id}")
        if exclusive:
            assert_envelope(seen, 404, "avatar.not_found")
        else:
            assert seen.status_code == 200 and seen.json()["id"] == avatar_id
        assert (await other.get("/v1/avatars")).json()["data"] == []
        gone = await other.delete(f"/v1/avatars/{avatar_id}")
        assert_envelope(gone, 404, "avatar.not_found")
