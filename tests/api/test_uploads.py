"""Reading upload-face requests: the three image forms, the byte cap, the fields,
and that no failed request reaches the service. Through HTTP on the real service:
what an upload stored is read back from the API, the registry and the storage
folder; a refused request leaves none of them changed."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.uploads import (
    BODY_OVERHEAD_BYTES,
    MAX_METADATA_BYTES,
    body_limits,
    check_metadata,
    parse_image_text,
)
from pipeline import FaceModels
from pipeline.errors import AvatarPrepError, ImageError
from sample_images import SAMPLES
from service.registry import AvatarRow
from service.runtime import Services
from service.settings import Settings
from service.storage import original_key
from tests.api.conftest import open_client, photo, spy
from tests.api.embedded import embedded_app, embedded_settings, stored_avatars, stored_objects
from tests.api.test_errors import assert_envelope
from tests.service.conftest import ImageServer

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"
MB = 1_000_000


JPEG = photo()
JPEG_B64 = base64.b64encode(JPEG).decode()


# --- the image text: URL, data URI or base64 -----------------------------------


def test_bare_base64_decodes_to_the_bytes() -> None:
    image = parse_image_text(JPEG_B64)
    assert (image.kind, image.data, image.url) == ("base64", JPEG, None)


def test_base64_wrapped_in_lines_decodes() -> None:
    wrapped = "\n".join(JPEG_B64[i : i + 76] for i in range(0, len(JPEG_B64), 76))
    assert parse_image_text(wrapped).data == JPEG


def test_data_uri_decodes_to_the_bytes() -> None:
    image = parse_image_text(f"data:image/jpeg;base64,{JPEG_B64}")
    assert (image.kind, image.data) == ("base64", JPEG)
    assert parse_image_text(f"DATA:Image/PNG;name=x.png;BASE64,{JPEG_B64}").data == JPEG


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.jpg",
        "http://example.com:8080/p?q=1",
        "HTTPS://EXAMPLE.COM/x",
        "ftp://example.com/a.jpg",  # the service refuses the scheme, not the parser
        "javascript:alert(1)",
    ],
)
def test_anything_with_a_scheme_is_a_url_for_the_service(url: str) -> None:
    image = parse_image_text(f"  {url} ")
    assert (image.kind, image.url, image.data) == ("url", url, None)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not base64 at all!", "image.base64_invalid"),
        ("QUJD=", "image.base64_invalid"),  # bad padding
        ("QUJDRA", "image.base64_invalid"),  # unpadded
        ("QUJD-_==", "image.base64_invalid"),  # URL-safe alphabet
        ("ñandú", "image.base64_invalid"),
        ("QUJD====", "image.base64_invalid"),  # excess padding
        ("====", "image.base64_invalid"),
        (" \n ", "image.missing"),  # nothing there
        ("data:text/plain;base64,SGVsbG8=", "image.unsupported_format"),
        ("data:;base64,SGVsbG8=", "image.unsupported_format"),
        ("data:image/png,rawbytes", "image.base64_invalid"),
        ("data:image/png;base64", "image.base64_invalid"),
        ("data:image/png;base64,@@@@", "image.base64_invalid"),
    ],
)
def test_bad_image_text_gets_its_code(text: str, code: str) -> None:
    with pytest.raises(ImageError) as caught:
        parse_image_text(text)
    assert caught.value.code == code
    assert caught.value.param == "image"


@pytest.mark.parametrize(
    ("value", "kind"),
    [([1, 2], "an array"), ("x", "a string"), (3, "a number"), (None, "null"), (True, "a boolean")],
)
def test_metadata_must_be_an_object(value: object, kind: str) -> None:
    with pytest.raises(AvatarPrepError) as caught:
        check_metadata(value)
    assert caught.value.code == "metadata.not_object"
    assert caught.value.message.endswith(f"got {kind}.")
    assert check_metadata({"a": [1]}) == {"a": [1]}


def test_metadata_has_a_size_limit() -> None:
    at_limit = {"k": "v" * (MAX_METADATA_BYTES - len('{"k":""}'))}
    assert check_metadata(at_limit) == at_limit
    with pytest.raises(AvatarPrepError) as caught:
        check_metadata({"k": "v" * MAX_METADATA_BYTES})
    assert (caught.value.code, caught.value.param) == ("metadata.too_large", "metadata")


def test_body_limits_leave_room_for_the_image_in_each_form() -> None:
    form_cap, json_cap = body_limits(3 * MB)
    assert form_cap == 3 * MB + BODY_OVERHEAD_BYTES
    assert json_cap == 4 * MB + BODY_OVERHEAD_BYTES  # 4 base64 characters per 3 bytes


# --- through HTTP: what reaches the service -------------------------------------


def the_one_stored(services: Services) -> AvatarRow:
    """The one avatar the registry holds."""
    (row,) = stored_avatars(services)
    return row


def original(services: Services, row: AvatarRow) -> bytes:
    """The original the service stored for `row`, under its own server-made key."""
    assert row.original_key == original_key(row.id)
    return services.storage.get(row.original_key)


async def test_multipart_upload_reaches_the_service_as_given(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = spy(monkeypatch, services.avatars, "create")
    response = await client.post(
        UPLOAD,
        files={"file": ("../../etc/me.jpg", JPEG, "image/jpeg")},
        data={"name": "Ada", "user_exclusive": "false", "metadata": '{"team": "blue"}'},
    )
    assert response.status_code == 202, response.text
    avatar = response.json()
    source = avatar["source"]
    assert (source["kind"], source["sha256"], source["bytes"]) == (
        "file",
        hashlib.sha256(JPEG).hexdigest(),
        len(JPEG),
    )
    row = the_one_stored(services)
    assert original(services, row) == JPEG
    # The client's file name reaches the service, which stores nothing by it.
    ((_, image),) = given
    assert image.filename == "../../etc/me.jpg"
    assert [
        p.relative_to(services.settings.storage_dir).as_posix() for p in stored_objects(services)
    ] == [row.original_key]
    assert (avatar["name"], avatar["user_exclusive"], avatar["metadata"]) == (
        "Ada",
        False,
        {"team": "blue"},
    )


async def test_multipart_defaults(client: httpx.AsyncClient) -> None:
    response = await client.post(UPLOAD, files={"file": ("a.jpg", JPEG)})
    avatar = response.json()
    assert (avatar["name"], avatar["user_exclusive"], avatar["metadata"]) == (None, True, {})


@pytest.mark.parametrize(
    "image", [JPEG_B64, f"data:image/jpeg;base64,{JPEG_B64}"], ids=["base64", "data-uri"]
)
async def test_json_base64_upload_reaches_the_service_decoded(
    client: httpx.AsyncClient, services: Services, image: str
) -> None:
    response = await client.post(
        UPLOAD, json={"image": image, "name": "Bo", "metadata": {"k": 1}, "user_exclusive": False}
    )
    assert response.status_code == 202, response.text
    source = response.json()["source"]
    assert (source["kind"], source["sha256"]) == ("base64", hashlib.sha256(JPEG).hexdigest())
    assert original(services, the_one_stored(services)) == JPEG
    assert response.json()["metadata"] == {"k": 1}


async def test_json_url_upload_is_fetched_and_dedupes_by_its_bytes(
    tmp_path: Path, models: FaceModels
) -> None:
    """A URL is fetched before any avatar exists (from a real local server; loopback
    allowed as only tests may), so the avatar is made from its bytes, stored as an
    upload's original, and the same bytes as base64 find the same avatar."""
    data = (SAMPLES / "accept_portrait.jpg").read_bytes()
    server = ImageServer({"/face.jpg": data})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = embedded_settings(tmp_path / "loopback", allow_loopback_urls=True)
    try:
        with embedded_app(settings, models) as e:
            async with open_client(e.app, headers={"X-API-Key": e.paid_key}) as c:
                response = await c.post(UPLOAD, json={"image": server.url("/face.jpg")})
                assert response.status_code == 202, response.text
                avatar = response.json()
                digest = hashlib.sha256(data).hexdigest()
                assert (avatar["source"]["kind"], avatar["source"]["sha256"]) == ("url", digest)
                row = the_one_stored(e.services)
                assert (row.source_url, row.original_key) == (
                    server.url("/face.jpg"),
                    original_key(avatar["id"]),
                )
                assert e.sent.ids == [avatar["id"]]
                again = await c.post(UPLOAD, json={"image": base64.b64encode(data).decode()})
                assert again.status_code == 200 and again.json()["id"] == avatar["id"]
    finally:
        server.shutdown()
        server.server_close()


# --- through HTTP: cheap failures, nothing created ------------------------------


def assert_nothing_created(services: Services) -> None:
    """No avatar row (so nothing sent to the workers either), no stored object."""
    assert stored_avatars(services) == []
    assert stored_objects(services) == []


async def failed(
    client: httpx.AsyncClient, services: Services, status: int, code: str, **request: object
) -> dict[str, object]:
    response = await client.post(UPLOAD, **request)  # type: ignore[arg-type]
    error = assert_envelope(response, status, code)
    assert_nothing_created(services)
    return error


AS_JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        pytest.param("image.missing", {}, id="empty_body"),
        pytest.param("image.missing", {"json": None, "headers": AS_JSON}, id="empty_json"),
        pytest.param(
            "image.missing",
            {
                "content": b"--x--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            id="empty_multipart",
        ),
        pytest.param("image.missing", {"files": {"file": ("a.jpg", b"")}}, id="empty_file"),
        pytest.param(
            "image.base64_invalid", {"json": {"image": "%%% not b64 %%%"}}, id="garbage_base64"
        ),
        pytest.param(
            "request.malformed_body",
            {"content": b'{"image": ', "headers": AS_JSON},
            id="malformed_json-truncated",
        ),
        pytest.param("request.malformed_body", {"json": [JPEG_B64]}, id="malformed_json-array"),
        pytest.param(
            "request.malformed_body",
            {"content": b"\xff{}", "headers": AS_JSON},
            id="malformed_json-not_utf8",
        ),
        # Too deep for the parser: refused, not a crash.
        pytest.param(
            "request.malformed_body",
            {"content": b"[" * 100_000 + b"]" * 100_000, "headers": AS_JSON},
            id="malformed_json-too_deep",
        ),
        pytest.param(
            "metadata.not_object",
            {"files": {"file": ("a.jpg", JPEG)}, "data": {"metadata": "[" * 5_000}},
            id="malformed_json-too_deep_metadata",
        ),
        pytest.param(
            "request.malformed_body",
            {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
            id="malformed_multipart-no_boundary",
        ),
        pytest.param(
            "request.malformed_body",
            {"files": [("file", ("a.jpg", JPEG)), ("file", ("b.jpg", JPEG))]},
            id="two_files",
        ),
    ],
)
async def test_missing_or_unreadable_image_is_a_400(
    client: httpx.AsyncClient, services: Services, code: str, sent: dict[str, Any]
) -> None:
    """A request with no image, or a body that cannot be read, is refused (400, `code`)
    and creates nothing."""
    await failed(client, services, 400, code, **sent)


@pytest.mark.parametrize(
    ("status", "code", "sent", "says"),
    [
        pytest.param(
            400,
            "image.missing",
            {"files": {"image": ("a.jpg", JPEG)}},
            ["`file`", "image"],
            id="wrong_field_name-multipart",
        ),
        pytest.param(
            400,
            "image.missing",
            {"json": {"file": JPEG_B64}},
            ["fields received: file"],
            id="wrong_field_name-json",
        ),
        pytest.param(
            400,
            "image.missing",
            {"data": {"file": "abc"}, "files": {"other": ("x", b"")}},
            ["file part"],
            id="file_sent_as_a_text_field",
        ),
        pytest.param(
            415,
            "image.unsupported_format",
            {"json": {"image": "data:text/html;base64,PGgxPmhpPC9oMT4="}},
            ["text/html"],
            id="data_uri_that_is_not_an_image",
        ),
        pytest.param(
            415,
            "request.unsupported_content_type",
            {"content": JPEG, "headers": {"content-type": "text/plain"}},
            ["multipart/form-data"],
            id="other_content_types",
        ),
    ],
)
async def test_a_refused_request_says_what_is_wrong(
    client: httpx.AsyncClient,
    services: Services,
    status: int,
    code: str,
    sent: dict[str, Any],
    says: list[str],
) -> None:
    """A request refused at the edge creates nothing, and its message names what is
    wrong with it."""
    error = await failed(client, services, status, code, **sent)
    for words in says:
        assert words in str(error["message"])


@pytest.mark.parametrize("metadata", ["[1, 2]", '"text"', "42", "null", "{not json"], ids=str)
async def test_form_metadata_not_an_object(
    client: httpx.AsyncClient, services: Services, metadata: str
) -> None:
    error = await failed(
        client,
        services,
        400,
        "metadata.not_object",
        files={"file": ("a.jpg", JPEG)},
        data={"metadata": metadata},
    )
    assert error["param"] == "metadata"


@pytest.mark.parametrize("metadata", [[1, 2], "text", 42, None], ids=str)
async def test_json_metadata_not_an_object(
    client: httpx.AsyncClient, services: Services, metadata: object
) -> None:
    await failed(
        client, services, 400, "metadata.not_object", json={"image": JPEG_B64, "metadata": metadata}
    )


async def test_oversized_metadata_in_either_form(
    client: httpx.AsyncClient, services: Services
) -> None:
    big = {"notes": "x" * (MAX_METADATA_BYTES + 1)}
    await failed(
        client, services, 400, "metadata.too_large", json={"image": JPEG_B64, "metadata": big}
    )
    form = {"files": {"file": ("a.jpg", JPEG)}, "data": {"metadata": json.dumps(big)}}
    await failed(client, services, 400, "metadata.too_large", **form)


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
async def test_wait_out_of_bounds(client: httpx.AsyncClient, services: Services, wait: str) -> None:
    response = await client.post(f"{UPLOAD}?wait={wait}", files={"file": ("a.jpg", JPEG)})
    error = assert_envelope(response, 422, "request.invalid_field")
    assert error["param"] == "wait"
    assert_nothing_created(services)


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"colour": "red"}, "colour", "the fields are file, name, user_exclusive, metadata"),
        ({"name": "n" * 201}, "name", "at most 200"),
        ({"user_exclusive": "maybe"}, "user_exclusive", "'true' or 'false'"),
    ],
    ids=["unknown", "name", "user_exclusive"],
)
async def test_form_fields_are_validated(
    client: httpx.AsyncClient,
    services: Services,
    fields: dict[str, str],
    param: str,
    says: str,
) -> None:
    form = {"files": {"file": ("a.jpg", JPEG)}, "data": fields}
    error = await failed(client, services, 422, "request.invalid_field", **form)
    assert error["param"] == param
    assert says in str(error["message"])


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"image": JPEG_B64, "user_exclusive": "yes"}, "user_exclusive", "valid boolean"),
        ({"image": JPEG_B64, "name": 7}, "name", "valid string"),
        ({"image": JPEG_B64, "name": "n" * 201}, "name", "at most 200"),
        ({"image": 12}, "image", "valid string"),
        ({"image": JPEG_B64, "colour": "red"}, "colour", "image, name, user_exclusive"),
    ],
)
async def test_json_fields_are_validated(
    client: httpx.AsyncClient, services: Services, body: object, param: str, says: str
) -> None:
    error = await failed(client, services, 422, "request.invalid_field", json=body)
    assert error["param"] == param
    assert says in str(error["message"])


async def test_svg_file_is_passed_to_the_service_to_sniff(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The edge never trusts a declared type: the service sniffs the bytes and refuses
    what they are, whatever the part says."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'
    response = await client.post(UPLOAD, files={"file": ("face.jpg", svg, "image/jpeg")})
    error = assert_envelope(response, 415, "image.unsupported_format")
    assert "SVG" in str(error["message"])
    assert_nothing_created(services)


# --- the byte cap -----------------------------------------------------------------


class CountingBody:
    """A request body of `size` bytes in 64 KiB chunks, counting what the app pulled."""

    def __init__(self, size: int, prefix: bytes = b"") -> None:
        self.size = size
        self.prefix = prefix
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = 65536
        sent = 0
        if self.prefix:
            self.pulled += len(self.prefix)
            sent += len(self.prefix)
            yield self.prefix
        while sent < self.size:
            part = min(chunk, self.size - sent)
            self.pulled += part
            sent += part
            yield b"\0" * part


def multipart_head() -> bytes:
    return (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
    )


async def test_25_mb_body_with_content_length_is_refused_unread(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = CountingBody(25 * MB, multipart_head())
    response = await client.post(
        UPLOAD,
        content=body,
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(25 * MB),
        },
    )
    error = assert_envelope(response, 413, "image.too_large")
    assert str(25 * MB) in str(error["message"])
    assert body.pulled == 0
    assert_nothing_created(services)


@pytest.mark.parametrize(
    ("content_type", "size"),
    [
        ("multipart/form-data; boundary=x", 25 * MB),
        # JSON carries base64: a 20 MB image is 26.7 MB of text, so its cap is higher.
        ("application/json", 30 * MB),
        ("text/plain", 25 * MB),
        ("", 25 * MB),
    ],
)
async def test_oversized_chunked_body_is_refused_after_the_cap(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    content_type: str,
    size: int,
) -> None:
    body = CountingBody(size, multipart_head())
    response = await client.post(UPLOAD, content=body, headers={"content-type": content_type})
    assert "content-length" not in response.request.headers
    if content_type in ("text/plain", ""):
        # Not a form nor JSON: the first chunk shows a body exists, and that is enough.
        assert_envelope(response, 415, "request.unsupported_content_type")
    else:
        assert_envelope(response, 413, "image.too_large")
    assert body.pulled <= max(body_limits(settings.pipeline.max_bytes)) + 65536
    assert body.pulled < size
    assert_nothing_created(services)


def at_the_cap(settings: Settings) -> bytes:
    """A JPEG of exactly the byte cap: a small one with zeros after its end."""
    return JPEG + b"\0" * (settings.pipeline.max_bytes - len(JPEG))


async def test_a_body_at_the_cap_is_read(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    """Just under the multipart cap is still an upload (the service then judges it)."""
    data = at_the_cap(settings)
    response = await client.post(UPLOAD, files={"file": ("big.jpg", data)})
    assert response.status_code == 202, response.text[:300]
    assert response.json()["source"]["bytes"] == settings.pipeline.max_bytes
    assert len(original(services, the_one_stored(services))) == settings.pipeline.max_bytes


async def test_json_cap_fits_a_max_size_image_as_base64(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    data = at_the_cap(settings)
    body = json.dumps({"image": "data:image/jpeg;base64," + base64.b64encode(data).decode()})
    response = await client.post(UPLOAD, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text[:300]
    assert response.json()["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert original(services, the_one_stored(services)) == data
