"""Bad input through the real API (and, where the verdict needs the image, the
real worker), with loopback URLs forbidden as in production. Each gets its
documented status and code, never a 500, and leaves nothing behind: no avatar
row for a request refused at the edge, no stored object without its row."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.harness import Stack, sample

UPLOAD = "/v1/avatars/upload-face"


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("nothing_orphaned_after_each")]


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    assert stack.settings.allow_loopback_urls is False  # as in production
    with stack.client(stack.new_key("bad-input")) as c:
        yield c


def avatar_count(client: httpx.Client) -> int:
    return len(client.get("/v1/avatars", params={"limit": 100}).json()["data"])


def assert_refused(
    client: httpx.Client, response: httpx.Response, status: int, code: str, before: int
) -> dict[str, Any]:
    """A refusal at the edge: the status and code, the envelope, and no avatar."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert "avatar_id" not in error
    assert avatar_count(client) == before
    return error


def png_bomb(side: int) -> bytes:
    """A valid greyscale PNG of side x side black pixels: a few hundred KB that
    decode to side**2 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row * 100) for _ in range(side // 100))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_empty_body(client: httpx.Client) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD)
    assert_refused(client, response, 400, "image.missing", before)


def test_empty_json_object(client: httpx.Client) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD, json={})
    assert_refused(client, response, 400, "image.missing", before)


def test_wrong_multipart_field_name(client: httpx.Client) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD, files={"image": ("a.jpg", sample("accept_portrait.jpg"))})
    error = assert_refused(client, response, 400, "image.missing", before)
    assert "file" in error["message"]


def test_garbage_base64(client: httpx.Client) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD, json={"image": "this is *not* base64!!"})
    assert_refused(client, response, 400, "image.base64_invalid", before)


def test_data_uri_that_is_not_an_image(client: httpx.Client) -> None:
    before = avatar_count(client)
    text = base64.b64encode(b"hello, this is plain text and not a photo").decode()
    response = client.post(UPLOAD, json={"image": f"data:image/jpeg;base64,{text}"})
    assert_refused(client, response, 415, "image.unsupported_format", before)


def test_svg(client: httpx.Client) -> None:
    before = avatar_count(client)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>'
    response = client.post(UPLOAD, files={"file": ("face.jpg", svg, "image/jpeg")})
    assert_refused(client, response, 415, "image.unsupported_format", before)


def test_decompression_bomb_is_refused_from_its_header(client: httpx.Client) -> None:
    before = avatar_count(client)
    bomb = png_bomb(20_000)  # 400 MP, over the 50 MP limit
    assert len(bomb) < 1_000_000
    response = client.post(UPLOAD, files={"file": ("bomb.png", bomb)})
    assert_refused(client, response, 413, "image.too_many_pixels", before)


def test_25_mb_body(client: httpx.Client) -> None:
    before = avatar_count(client)
    body = sample("accept_portrait.jpg") + b"\x00" * 25_000_000
    response = client.post(UPLOAD, files={"file": ("big.jpg", body)})
    assert_refused(client, response, 413, "image.too_large", before)


def test_truncated_jpeg_fails_unreadable(stack: Stack, client: httpx.Client) -> None:
    data = sample("accept_portrait.jpg")
    truncated = data[: len(data) // 3]
    Image.open(io.BytesIO(truncated))  # the header still reads: only a decode can tell
    before = avatar_count(client)
    response = client.post(UPLOAD, params={"wait": 30}, files={"file": ("cut.jpg", truncated)})
    if response.status_code == 400:  # refused at the edge
        assert_refused(client, response, 400, "image.unreadable", before)
        return
    # Or accepted, then failed by the worker: the 422 verdict names the avatar.
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "image.unreadable"
    failed = stack.finished(client, error["avatar_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "image.unreadable"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/portrait.jpg",
        "http://127.1.2.3:8080/portrait.jpg",
        "http://10.0.0.5/portrait.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/portrait.jpg",
        "http://0.0.0.0/portrait.jpg",
        "http://[::ffff:127.0.0.1]/portrait.jpg",
        "http://192.168.1.1/portrait.jpg",
        "http://localhost/portrait.jpg",
    ],
)
def test_urls_to_non_public_addresses(client: httpx.Client, url: str) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD, json={"image": url})
    assert_refused(client, response, 400, "image.url_forbidden", before)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "http://", "https:///a.jpg"]
)
def test_urls_that_are_not_http(client: httpx.Client, url: str) -> None:
    before = avatar_count(client)
    response = client.post(UPLOAD, json={"image": url})
    assert_refused(client, response, 400, "image.url_invalid", before)


def test_metadata_that_is_not_an_object(client: httpx.Client) -> None:
    before = avatar_count(client)
    image = base64.b64encode(sample("accept_portrait.jpg")).decode()
    response = client.post(UPLOAD, json={"image": image, "metadata": ["a"]})
    assert_refused(client, response, 400, "metadata.not_object", before)


def test_missing_and_unknown_keys(stack: Stack) -> None:
    files = {"file": ("a.jpg", sample("accept_portrait.jpg"))}
    no_key = httpx.post(f"{stack.base_url}{UPLOAD}", files=files)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "auth.missing_key"
    with stack.client("ak_live_not-a-key") as stranger:
        unknown = stranger.post(UPLOAD, files=files)
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "auth.invalid_key"
