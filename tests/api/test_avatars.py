"""The avatar routes: the status of each upload result, get, list, image, delete."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api.fakes import FakeServices
from tests.api.test_errors import assert_envelope

pytestmark = pytest.mark.anyio

UPLOAD = "/v1/avatars/upload-face"
AVATAR_ID = re.compile(r"avat_[0-7][0-9A-HJKMNP-TV-Z]{25}")
FACE_MULTIPLE = {
    "code": "face.multiple",
    "message": "The image shows 2 faces of similar size; upload a photo of one person.",
    "param": "image",
    "checks": [
        {
            "name": "face_count",
            "passed": False,
            "value": 2,
            "limit": 1,
            "hint": "Crop the photo to one person.",
        }
    ],
}


async def upload(
    client: httpx.AsyncClient, data: bytes = b"photo-1", wait: int = 0
) -> httpx.Response:
    return await client.post(f"{UPLOAD}?wait={wait}", files={"file": ("a.jpg", data)})


async def test_accepted_upload_is_202_with_location(client: httpx.AsyncClient) -> None:
    response = await upload(client)
    assert response.status_code == 202
    avatar = response.json()
    assert AVATAR_ID.fullmatch(avatar["id"])
    assert avatar["object"] == "avatar" and avatar["status"] == "queued"
    assert response.headers["location"] == f"/v1/avatars/{avatar['id']}"


async def test_same_bytes_again_is_200_with_the_existing_avatar(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    first = await upload(client)
    again = await upload(client, wait=5)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert "location" not in again.headers


async def test_ready_within_wait_is_201(client: httpx.AsyncClient, services: FakeServices) -> None:
    services.avatars.finish_after = (3, "ready")
    response = await upload(client, wait=10)
    assert response.status_code == 201, response.text
    avatar = response.json()
    assert avatar["status"] == "ready"
    assert set(avatar["images"]) == {"1:1", "4:3", "3:4"}
    assert response.headers["location"] == f"/v1/avatars/{avatar['id']}"
    assert services.avatars.stored[avatar["id"]].gets == 3


async def test_rejected_within_wait_is_422_with_the_avatar_id(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.avatars.finish_after = (1, FACE_MULTIPLE)
    response = await upload(client, wait=10)
    error = assert_envelope(response, 422, "face.multiple")
    assert AVATAR_ID.fullmatch(str(error["avatar_id"]))
    assert error["checks"] == FACE_MULTIPLE["checks"]
    assert error["message"] == FACE_MULTIPLE["message"]
    assert error["param"] == "image"
    # The failed avatar stays readable, with the same error object.
    avatar = (await client.get(f"/v1/avatars/{error['avatar_id']}")).json()
    assert avatar["status"] == "failed" and avatar["error"] == FACE_MULTIPLE


async def test_failure_of_an_image_code_after_processing_is_422(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.avatars.finish_after = (
        1,
        {"code": "image.unreadable", "message": "The JPEG is truncated.", "param": "image"},
    )
    response = await upload(client, wait=10)
    assert_envelope(response, 422, "image.unreadable")


async def test_wait_that_runs_out_is_202_after_polling(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    response = await upload(client, wait=1)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert services.avatars.stored[response.json()["id"]].gets >= 2


async def test_no_wait_does_not_poll(client: httpx.AsyncClient, services: FakeServices) -> None:
    response = await upload(client)
    assert services.avatars.stored[response.json()["id"]].gets == 0


async def test_get_avatar(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.get(f"/v1/avatars/{made['id']}")
    assert response.status_code == 200
    assert response.json() == made


async def test_get_unknown_avatar_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/avatars/avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    assert_envelope(response, 404, "avatar.not_found")


async def test_list_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [(await upload(client, f"photo-{i}".encode())).json()["id"] for i in range(5)]
    newest_first = ids[::-1]
    page = (await client.get("/v1/avatars?limit=2")).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [a["id"] for a in page["data"]] == newest_first[:2]
    rest = (await client.get(f"/v1/avatars?limit=10&starting_after={newest_first[1]}")).json()
    assert [a["id"] for a in rest["data"]] == newest_first[2:]
    assert rest["has_more"] is False
    default = (await client.get("/v1/avatars")).json()
    assert len(default["data"]) == 5


async def test_list_filters_by_status(client: httpx.AsyncClient, services: FakeServices) -> None:
    await upload(client, b"a")
    services.avatars.finish_after = (1, "ready")
    ready = (await upload(client, b"b", wait=5)).json()
    page = (await client.get("/v1/avatars?status=ready")).json()
    assert [a["id"] for a in page["data"]] == [ready["id"]]


async def test_image_before_ready_is_409(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.get(f"/v1/avatars/{made['id']}/image")
    assert_envelope(response, 409, "avatar.not_ready")


@pytest.mark.parametrize("aspect_ratio", ["1:1", "4:3", "3:4"])
async def test_image_bytes_of_each_aspect_ratio(
    client: httpx.AsyncClient, services: FakeServices, aspect_ratio: str
) -> None:
    services.avatars.finish_after = (1, "ready")
    made = (await upload(client, wait=5)).json()
    response = await client.get(
        f"/v1/avatars/{made['id']}/image", params={"aspect_ratio": aspect_ratio}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == f"jpeg {aspect_ratio}".encode()
    assert "private" in response.headers["cache-control"]


async def test_image_default_is_1_1(client: httpx.AsyncClient, services: FakeServices) -> None:
    services.avatars.finish_after = (1, "ready")
    made = (await upload(client, wait=5)).json()
    response = await client.get(f"/v1/avatars/{made['id']}/image")
    assert response.content == b"jpeg 1:1"


async def test_image_on_s3_is_a_302(client: httpx.AsyncClient, services: FakeServices) -> None:
    services.avatars.finish_after = (1, "ready")
    services.avatars.image_url = "https://s3.example.com/bucket/avatars/x/4x3.jpg"
    made = (await upload(client, wait=5)).json()
    response = await client.get(f"/v1/avatars/{made['id']}/image?aspect_ratio=4:3")
    assert response.status_code == 302
    assert response.headers["location"] == f"{services.avatars.image_url}?ar=4:3"


async def test_delete_is_204_then_404(client: httpx.AsyncClient) -> None:
    made = (await upload(client)).json()
    response = await client.delete(f"/v1/avatars/{made['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_envelope(await client.get(f"/v1/avatars/{made['id']}"), 404, "avatar.not_found")
    assert_envelope(await client.delete(f"/v1/avatars/{made['id']}"), 404, "avatar.not_found")
