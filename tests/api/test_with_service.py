"""The API over the real service on its embedded defaults (a SQLite registry, a
storage folder), with real photos and the real pipeline. The only seam is
`enqueue`: here it runs `process` on a thread, as a worker would. What the
service decides (sniffed formats, pixel limits, URL addresses, dedupe, verdicts)
is checked as a client sees it. Real HTTP, a real worker process, Redis,
PostgreSQL and S3 are tests/integration's.
"""

from __future__ import annotations

import base64
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
from sample_images import SAMPLES
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from tests.api.conftest import open_client
from tests.api.test_errors import assert_envelope, assert_names_field
from tests.documented import LANDMARK_NAMES, RENDITION_SIZES

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
    assert set(avatar["face"]["landmarks"]) == LANDMARK_NAMES
    for ratio, size in RENDITION_SIZES.items():
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
    # No worker in this process's tests, but the API has just started.
    assert response.json()["checks"] == {"database": True, "storage": True, "workers": True}


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
    assert ready.json()["checks"] == {
        "database": True,
        "storage": True,
        "broker": True,
        "workers": True,
    }
    assert made.status_code == 202 and made.json()["status"] == "queued"
    queued = list((Path(settings.data_dir) / "broker" / "queue").iterdir())
    assert len(queued) == 1 and made.json()["id"].encode() in queued[0].read_bytes()


# --- images a page can show: signed links ---------------------------------------


async def test_signed_links_show_images_without_the_key_until_they_expire(
    client: httpx.AsyncClient, real: Services
) -> None:
    avatar = (await upload_file(client, "accept_portrait.jpg")).json()
    links = (await client.get(f"/v1/avatars/{avatar['id']}/links")).json()

    assert set(links["images"]) == {"1:1", "4:3", "3:4"} and links["overlay"]
    anonymous = {"X-API-Key": ""}  # what an <img src> sends: no key
    for ratio, url in links["images"].items():
        image = await client.get(url, headers=anonymous)
        assert image.status_code == 200, image.text
        size = Image.open(io.BytesIO(image.content)).size
        assert size == (avatar["images"][ratio]["width"], avatar["images"][ratio]["height"])
    overlay = await client.get(links["overlay"], headers=anonymous)
    assert overlay.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(overlay.content)).size[0] > 512

    # Altered: another rendition, another avatar, another expiry, another signature.
    url = links["images"]["4:3"]
    path, query = url.split("?")
    expires = int(query.split("&")[0].removeprefix("expires="))
    for forged in (
        url.replace("/4x3?", "/overlay?"),
        url.replace(avatar["id"], "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"),
        url.replace(f"expires={expires}", f"expires={expires + 3600}"),
        url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
    ):
        assert_envelope(await client.get(forged, headers=anonymous), 403, "link.invalid")
    # Expired: the same signer's link from an hour ago.
    old_expires, old_signature = real.previews._signer.sign(f"{avatar['id']}/4x3", now=0)
    stale = f"{path}?expires={old_expires}&signature={old_signature}"
    assert_envelope(await client.get(stale, headers=anonymous), 403, "link.invalid")


async def test_a_rejected_photo_has_an_overlay_but_no_renditions(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    error = (await upload_file(client, "reject_multiple_faces.jpg")).json()["error"]
    links = (await client.get(f"/v1/avatars/{error['avatar_id']}/links")).json()
    assert links["images"] == {}
    overlay = await client.get(f"/v1/avatars/{error['avatar_id']}/overlay")
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/jpeg"
    # Another account sees neither the links nor the overlay.
    other = Services.create(settings, ThreadWorker())
    _, stranger = other.keys.create("stranger", "paid")
    other.close()
    for path in ("links", "overlay"):
        response = await client.get(
            f"/v1/avatars/{error['avatar_id']}/{path}", headers={"X-API-Key": stranger}
        )
        assert_envelope(response, 404, "avatar.not_found")


# --- validation without an avatar ---------------------------------------------


async def test_validate_judges_a_photo_and_stores_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    portrait = (SAMPLES / "accept_portrait.jpg").read_bytes()
    accepted = await client.post("/v1/avatars/validate", files={"file": ("portrait.jpg", portrait)})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["verdict"], body["error"], body["warnings"]) == ("accept", None, [])
    assert {c["name"] for c in body["checks"]} >= {"face_count", "yaw", "sharpness"}
    sizes = {ar: (i["width"], i["height"]) for ar, i in body["images"].items()}
    assert sizes == RENDITION_SIZES
    assert body["source"]["sha256"] and body["face"]["score"] > 0.5

    two = (SAMPLES / "reject_multiple_faces.jpg").read_bytes()
    rejected = (await client.post("/v1/avatars/validate", files={"file": ("two.jpg", two)})).json()
    assert (rejected["verdict"], rejected["error"]["code"]) == ("reject", "face.multiple")
    assert len(rejected["candidates"]) >= 2 and rejected["images"] is None
    assert any(not c["passed"] for c in rejected["checks"])

    # The same body forms as upload, and the same cheap checks.
    as_json = await client.post(
        "/v1/avatars/validate", json={"image": base64.b64encode(portrait).decode()}
    )
    assert as_json.json()["verdict"] == "accept"
    assert_envelope(
        await client.post("/v1/avatars/validate", files={"file": ("x.jpg", b"not an image")}),
        415,
        "image.unsupported_format",
    )
    # Nothing of any of it was kept.
    assert (await client.get("/v1/avatars")).json()["data"] == []
    assert stored_files(settings) == []


# --- HTTP basics: ETag, HEAD, CORS ---------------------------------------------


async def test_an_image_revalidates_by_etag_and_answers_head(client: httpx.AsyncClient) -> None:
    avatar = (await upload_file(client, "accept_portrait.jpg")).json()
    url = avatar["images"]["4:3"]["url"]
    first = await client.get(url)
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"].startswith("private")

    again = await client.get(url, headers={"If-None-Match": f'W/"other", {etag}'})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    changed = await client.get(url, headers={"If-None-Match": '"another"'})
    assert changed.status_code == 200 and changed.content == first.content

    head = await client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(first.content)
    assert (head.headers["etag"], head.headers["content-type"]) == (etag, "image/jpeg")


async def test_cors_lets_listed_origins_call_the_api_and_no_others(
    settings: Settings, real: Services
) -> None:
    allowed = "https://app.example.com"
    app = create_app(settings.model_copy(update={"cors_allowed_origins": [allowed]}), real)
    _, key = real.keys.create("browser", "paid")
    async with open_client(app) as browser:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        }
        ok = await browser.options(UPLOAD, headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
        listed = await browser.get("/v1/avatars", headers={"Origin": allowed, "X-API-Key": key})
        assert listed.headers["access-control-allow-origin"] == allowed
        assert "X-Request-Id" in listed.headers["access-control-expose-headers"]

        other = await browser.options(
            UPLOAD, headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers
    # None by default: no CORS headers at all.
    async with open_client(create_app(settings, real)) as plain:
        response = await plain.get("/v1/avatars", headers={"Origin": allowed, "X-API-Key": key})
        assert "access-control-allow-origin" not in response.headers


# --- errors that name the request's own field ---------------------------------

ROOM = {"platform": "livekit", "url": "wss://demo.livekit.cloud"}
# What the session errors must never show: pydantic's model name and pattern syntax.
NOT_FOR_CLIENTS = ("RoomRequest", "\\S")
UNKNOWN_ID = "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"


@pytest.mark.parametrize(
    ("avatar_id", "status", "code", "words"),
    [
        # Ids of other shapes: the field and the id form are named.
        ("123e4567-e89b-12d3-a456-426614174000", 400, "avatar_id.invalid", "avat_ followed by 26"),
        ("0123456789abcdef0123456789abcdef", 400, "avatar_id.invalid", "avat_ followed by 26"),
        ("avatar_01JD3Z8G9YR3K2N5M6P7Q8W4TX", 400, "avatar_id.invalid", "https URL"),
        (UNKNOWN_ID, 404, "avatar.not_found", UNKNOWN_ID),
        ("example.com/photo.jpg", 400, "image.url_invalid", "add https://"),
    ],
)
async def test_session_errors_name_the_avatar_id_sent(
    client: httpx.AsyncClient, avatar_id: str, status: int, code: str, words: str
) -> None:
    response = await client.post("/v1/sessions", json={"avatar_id": avatar_id, "room": ROOM})
    assert_names_field(response, status, code, "avatar_id", words, never=NOT_FOR_CLIENTS)


@pytest.mark.parametrize(
    ("room", "param", "words"),
    [
        (None, "room", "object"),
        ({"platform": "daily", "url": "ftp://x"}, "room.url", "starts with wss://"),
    ],
)
async def test_session_errors_name_the_room_field_sent(
    client: httpx.AsyncClient, room: dict[str, str] | None, param: str, words: str
) -> None:
    response = await client.post("/v1/sessions", json={"avatar_id": "avat_x", "room": room})
    assert_names_field(response, 422, "request.invalid_field", param, words, never=NOT_FOR_CLIENTS)


@pytest.mark.parametrize(
    ("image", "code", "words"),
    [
        ("", "image.missing", "image is empty"),
        ("example.com/photo.jpg", "image.url_invalid", "add https://"),
        ("data:image/jpeg;base64,@@@@", "image.base64_invalid", "image is neither"),
    ],
)
async def test_upload_errors_name_the_image_field(
    client: httpx.AsyncClient, image: str, code: str, words: str
) -> None:
    response = await client.post(UPLOAD, json={"image": image})
    assert_names_field(response, 400, code, "image", words, never=("fields received",))


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
