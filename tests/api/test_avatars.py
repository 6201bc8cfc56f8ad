"""The avatar routes: the status of each upload result, get, list, image, delete, on
the real service; verdicts come from its in-process worker and the real pipeline."""

from __future__ import annotations

import io
import re
import time

import httpx
import pytest
from PIL import Image

from sample_images import SAMPLES
from service.avatars import ImageRef
from service.runtime import Services
from tests.api.conftest import photo
from tests.api.embedded import Embedded, Sent
from tests.api.test_errors import FACE_COUNT, assert_envelope
from tests.documented import RENDITION_SIZES

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"
AVATAR_ID = re.compile(r"avat_[0-7][0-9A-HJKMNP-TV-Z]{25}")
FACE_MULTIPLE = {
    "type": "invalid_request",
    "code": "face.multiple",
    "message": "The image shows 2 faces of similar size; upload a photo of one person.",
    "param": "image",
}
PORTRAIT = (SAMPLES / "accept_portrait.jpg").read_bytes()
TWO_FACES = (SAMPLES / "reject_multiple_faces.jpg").read_bytes()
# A real JPEG cut in half: its header passes the cheap checks, its data cannot be decoded.
TRUNCATED = PORTRAIT[: len(PORTRAIT) // 2]


async def upload(
    client: httpx.AsyncClient, data: bytes | None = None, wait: int = 0
) -> httpx.Response:
    data = photo() if data is None else data
    return await client.post(f"{UPLOAD}?wait={wait}", files={"file": ("a.jpg", data)})


@pytest.fixture
def worker(embedded: Embedded) -> Sent:
    """The work queue: the ids sent; `worker.work(services.avatars.process)` starts it."""
    return embedded.sent


@pytest.fixture
def working(worker: Sent, services: Services) -> Sent:
    """The queue's in-process worker, running the real pipeline."""
    worker.work(services.avatars.process)
    return worker


async def ready(client: httpx.AsyncClient, data: bytes = PORTRAIT) -> dict[str, object]:
    """An avatar of `data`, uploaded and waited for until the worker made it ready."""
    response = await upload(client, data, wait=30)
    assert response.status_code == 201, response.text
    avatar: dict[str, object] = response.json()
    return avatar


async def test_accepted_upload_is_202_with_location(client: httpx.AsyncClient) -> None:
    response = await upload(client)
    assert response.status_code == 202
    avatar = response.json()
    assert AVATAR_ID.fullmatch(avatar["id"])
    assert avatar["object"] == "avatar" and avatar["status"] == "queued"
    assert response.headers["location"] == f"/v1/avatars/{avatar['id']}"


async def test_same_bytes_again_is_200_with_the_existing_avatar(
    client: httpx.AsyncClient,
) -> None:
    first = await upload(client)
    again = await upload(client, wait=5)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert "location" not in again.headers


@pytest.mark.usefixtures("working")
async def test_ready_within_wait_is_201(client: httpx.AsyncClient) -> None:
    response = await upload(client, PORTRAIT, wait=30)
    assert response.status_code == 201, response.text
    avatar = response.json()
    assert avatar["status"] == "ready"
    assert set(avatar["images"]) == {"1:1", "4:3", "3:4"}
    assert {r: (i["width"], i["height"]) for r, i in avatar["images"].items()} == RENDITION_SIZES
    assert response.headers["location"] == f"/v1/avatars/{avatar['id']}"
    assert (await client.get(f"/v1/avatars/{avatar['id']}")).json() == avatar


@pytest.mark.usefixtures("working")
async def test_rejected_within_wait_is_422_with_the_avatar_id(client: httpx.AsyncClient) -> None:
    response = await upload(client, TWO_FACES, wait=30)
    error = assert_envelope(response, 422, "face.multiple")
    assert AVATAR_ID.fullmatch(str(error["avatar_id"]))
    checks = error["checks"]
    assert isinstance(checks, list) and checks[0] == FACE_COUNT
    assert [c["name"] for c in checks if not c["passed"] and c["severity"] == "reject"] == [
        "face_count"
    ]
    assert error["message"] == FACE_MULTIPLE["message"]
    assert error["param"] == "image"
    # The failed avatar stays readable, with the same error object.
    avatar = (await client.get(f"/v1/avatars/{error['avatar_id']}")).json()
    assert avatar["status"] == "failed"
    assert avatar["error"] == {**FACE_MULTIPLE, "checks": checks}


@pytest.mark.usefixtures("working")
async def test_failure_of_an_image_code_after_processing_is_422(
    client: httpx.AsyncClient,
) -> None:
    response = await upload(client, TRUNCATED, wait=30)
    error = assert_envelope(response, 422, "image.unreadable")
    assert "truncated" in str(error["message"])
    avatar = (await client.get(f"/v1/avatars/{error['avatar_id']}")).json()
    assert avatar["status"] == "failed" and avatar["error"]["code"] == "image.unreadable"


async def test_wait_that_runs_out_is_202_after_polling(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await upload(client, wait=1)  # no worker: the avatar stays queued
    assert time.monotonic() - started >= 0.9
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


async def test_no_wait_does_not_poll(
    client: httpx.AsyncClient, worker: Sent, services: Services
) -> None:
    # A worker faster than the answer: the avatar is ready before the route answers,
    # so any read after the create would have said so.
    worker.work(services.avatars.process, inline=True)
    response = await upload(client, PORTRAIT)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert (await client.get(f"/v1/avatars/{response.json()['id']}")).json()["status"] == "ready"


async def test_get_avatar(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.get(f"/v1/avatars/{made['id']}")
    assert response.status_code == 200
    assert response.json() == made


async def test_get_unknown_avatar_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/avatars/avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    assert_envelope(response, 404, "avatar.not_found")


async def test_list_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [(await upload(client, photo(i))).json()["id"] for i in range(5)]
    newest_first = ids[::-1]
    page = (await client.get("/v1/avatars?limit=2")).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [a["id"] for a in page["data"]] == newest_first[:2]
    rest = (await client.get(f"/v1/avatars?limit=10&starting_after={newest_first[1]}")).json()
    assert [a["id"] for a in rest["data"]] == newest_first[2:]
    assert rest["has_more"] is False
    default = (await client.get("/v1/avatars")).json()
    assert len(default["data"]) == 5


async def test_list_filters_by_status(
    client: httpx.AsyncClient, worker: Sent, services: Services
) -> None:
    queued = (await upload(client, photo(1))).json()  # before the worker starts
    worker.work(services.avatars.process)
    made = await ready(client)
    page = (await client.get("/v1/avatars?status=ready")).json()
    assert [a["id"] for a in page["data"]] == [made["id"]]
    page = (await client.get("/v1/avatars?status=queued")).json()
    assert [a["id"] for a in page["data"]] == [queued["id"]]


async def test_image_before_ready_is_409(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.get(f"/v1/avatars/{made['id']}/image")
    assert_envelope(response, 409, "avatar.not_ready")


@pytest.mark.usefixtures("working")
@pytest.mark.parametrize("aspect_ratio", ["1:1", "4:3", "3:4"])
async def test_image_bytes_of_each_aspect_ratio(
    client: httpx.AsyncClient, aspect_ratio: str
) -> None:
    made = await ready(client)
    response = await client.get(
        f"/v1/avatars/{made['id']}/image", params={"aspect_ratio": aspect_ratio}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == ("JPEG", RENDITION_SIZES[aspect_ratio])
    assert "private" in response.headers["cache-control"]


@pytest.mark.usefixtures("working")
async def test_image_default_is_1_1(client: httpx.AsyncClient) -> None:
    made = await ready(client)
    response = await client.get(f"/v1/avatars/{made['id']}/image")
    square = await client.get(f"/v1/avatars/{made['id']}/image?aspect_ratio=1:1")
    assert response.status_code == 200
    assert response.content == square.content
    assert Image.open(io.BytesIO(response.content)).size == RENDITION_SIZES["1:1"]


@pytest.mark.usefixtures("working")
async def test_image_on_s3_is_a_302(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seam: storage that answers with a presigned URL (the real S3 302 is
    # tests/integration/test_upload_flow.py's); the real service still decides.
    bucket = "https://s3.example.com/bucket/avatars/x/4x3.jpg"
    real_image = services.avatars.image

    def on_s3(account_id: str, avatar_id: str, aspect_ratio: str) -> ImageRef:
        ref = real_image(account_id, avatar_id, aspect_ratio)
        return ImageRef(content_type=ref.content_type, url=f"{bucket}?ar={aspect_ratio}")

    monkeypatch.setattr(services.avatars, "image", on_s3)
    made = await ready(client)
    response = await client.get(f"/v1/avatars/{made['id']}/image?aspect_ratio=4:3")
    assert response.status_code == 302
    assert response.headers["location"] == f"{bucket}?ar=4:3"


async def test_delete_is_204_then_404(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.delete(f"/v1/avatars/{made['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_envelope(await client.get(f"/v1/avatars/{made['id']}"), 404, "avatar.not_found")
    assert_envelope(await client.delete(f"/v1/avatars/{made['id']}"), 404, "avatar.not_found")
