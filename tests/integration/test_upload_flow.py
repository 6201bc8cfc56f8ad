"""The avatar flow through real HTTP, a real worker process, Redis, PostgreSQL and
SeaweedFS: every way to send an image, polling to ready, the image redirect,
dedupe (20 concurrent uploads by one URL give one avatar), a face rejection,
delete, and URL fetches that must fail (a redirect to a private address, a
server that never answers, a 404) with no avatar made. Loopback URLs are allowed
here, so the API can fetch from the local test server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.documented import LANDMARK_NAMES, RENDITION_SIZES
from tests.integration.harness import (
    ImageServer,
    Stack,
    assert_public_jpeg,
    avatar_statuses,
    sample,
)
from tests.services import SeaweedS3

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("nothing_orphaned_at_the_end"),
    pytest.mark.stack(
        concurrency=2,
        allow_loopback_urls=True,
        # The silent server must cost seconds, not the production 10 s; twenty
        # concurrent fetches of one photo must still finish on a loaded machine.
        fetch_connect_timeout_seconds=1.0,
        fetch_total_timeout_seconds=6.0,
    ),
]


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.cli_key("flow")) as c:
        yield c


def upload_file(client: httpx.Client, name: str, **params: Any) -> httpx.Response:
    return client.post(
        "/v1/avatars/upload-face", params=params, files={"file": (name, sample(name))}
    )


def upload_json(client: httpx.Client, image: str, **params: Any) -> httpx.Response:
    return client.post("/v1/avatars/upload-face", params=params, json={"image": image})


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    avatar: dict[str, Any] = response.json()
    assert avatar["status"] in ("queued", "processing")
    assert response.headers["location"] == f"/v1/avatars/{avatar['id']}"
    assert response.headers["x-request-id"].startswith("req_")
    return avatar


def assert_ready(avatar: dict[str, Any], kind: str, fmt: str) -> None:
    assert avatar["status"] == "ready", avatar["error"]
    assert avatar["source"]["kind"] == kind
    assert avatar["source"]["format"] == fmt
    sizes = {ratio: (i["width"], i["height"]) for ratio, i in avatar["images"].items()}
    assert sizes == RENDITION_SIZES
    assert set(avatar["face"]["landmarks"]) == LANDMARK_NAMES
    assert avatar["ready_at"] is not None and avatar["error"] is None


def test_file_upload_is_accepted_then_ready(stack: Stack, client: httpx.Client) -> None:
    avatar = accepted(upload_file(client, "accept_portrait.jpg"))
    assert_ready(stack.finished(client, avatar["id"]), "file", "jpeg")


def test_base64_upload_is_ready(stack: Stack, client: httpx.Client) -> None:
    encoded = base64.b64encode(sample("progressive.jpg")).decode()
    avatar = accepted(upload_json(client, encoded))
    assert_ready(stack.finished(client, avatar["id"]), "base64", "jpeg")


def test_data_uri_upload_is_ready(stack: Stack, client: httpx.Client) -> None:
    encoded = base64.b64encode(sample("webp.webp")).decode()
    avatar = accepted(upload_json(client, f"data:image/webp;base64,{encoded}"))
    assert_ready(stack.finished(client, avatar["id"]), "base64", "webp")


def test_url_upload_is_fetched_then_processed_and_dedupes_like_a_file(
    stack: Stack, client: httpx.Client, images: ImageServer
) -> None:
    avatar = accepted(upload_json(client, f"{images.base_url}/accept_astronaut.png"))
    # Fetched before the avatar was made: the bytes are known from the start.
    assert avatar["source"]["sha256"] is not None
    finished = stack.finished(client, avatar["id"])
    assert_ready(finished, "url", "png")
    assert (finished["source"]["width"], finished["source"]["height"]) == (512, 512)
    # The same bytes as a file, and as base64, are that avatar.
    again = upload_file(client, "accept_astronaut.png")
    assert again.status_code == 200 and again.json()["id"] == avatar["id"]
    encoded = base64.b64encode(sample("accept_astronaut.png")).decode()
    assert upload_json(client, encoded).json()["id"] == avatar["id"]


def test_twenty_concurrent_sessions_by_one_url_give_one_avatar(
    stack: Stack, images: ImageServer
) -> None:
    """Issue 12: 20 concurrent sessions by one image URL made 20 avatars."""
    with stack.client(stack.new_key("flow-url-dedupe")) as one:
        uploaded = one.post(
            "/v1/avatars/upload-face", files={"file": ("p.jpg", sample("display_p3.jpg"))}
        )
        assert uploaded.status_code == 202, uploaded.text
        first = stack.finished(one, uploaded.json()["id"])
        assert first["status"] == "ready"
        # A URL of bytes already uploaded reuses that avatar.
        by_url = upload_json(one, f"{images.base_url}/display_p3.jpg")
        assert by_url.status_code == 200 and by_url.json()["id"] == first["id"]

    body = {
        "avatar_id": f"{images.base_url}/ycck.jpg",
        "room": {"platform": "daily", "url": "https://acme.daily.co/demo"},
    }
    with stack.client(stack.new_key("flow-url-sessions")) as client:

        def start(_: int) -> httpx.Response:
            return client.post("/v1/sessions", json=body)

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(start, range(20)))
        refused = [r.text for r in responses if r.status_code != 201]
        assert not refused, refused[:2]
        assert len({r.json()["avatar_id"] for r in responses}) == 1
        listed = client.get("/v1/avatars", params={"limit": 100}).json()["data"]
        assert len(listed) == 1 and listed[0]["source"]["kind"] == "url"


def test_wait_answers_201_when_ready_in_time(client: httpx.Client) -> None:
    response = upload_file(client, "exif_rotated_6.jpg", wait=30)
    assert response.status_code == 201, response.text
    avatar = response.json()
    assert avatar["status"] == "ready"
    # The face is reported in the upright image (EXIF orientation 6 applied).
    assert (avatar["source"]["width"], avatar["source"]["height"]) == (900, 1200)


def test_image_redirects_to_a_presigned_url_that_works(stack: Stack, client: httpx.Client) -> None:
    avatar = accepted(upload_file(client, "gray.jpg"))
    assert stack.finished(client, avatar["id"])["status"] == "ready"
    for ratio, size in RENDITION_SIZES.items():
        response = client.get(f"/v1/avatars/{avatar['id']}/image", params={"aspect_ratio": ratio})
        assert response.status_code == 302, response.text
        assert_public_jpeg(stack, response.headers["location"], size)


def test_same_bytes_again_answer_200_with_the_same_avatar(
    stack: Stack, client: httpx.Client
) -> None:
    first = accepted(upload_file(client, "tiff.tiff"))
    again = upload_file(client, "tiff.tiff")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    # The same bytes as base64 are the same image too.
    as_base64 = upload_json(client, base64.b64encode(sample("tiff.tiff")).decode())
    assert as_base64.status_code == 200 and as_base64.json()["id"] == first["id"]
    # Another account uploading them gets an avatar of its own.
    with stack.client(stack.new_key("flow-other")) as other:
        assert accepted(upload_file(other, "tiff.tiff"))["id"] != first["id"]
    assert stack.finished(client, first["id"])["status"] == "ready"


def test_face_rejection_ends_failed_with_its_code_and_checks(
    stack: Stack, client: httpx.Client
) -> None:
    avatar = accepted(upload_file(client, "reject_multiple_faces.jpg"))
    failed = stack.finished(client, avatar["id"])
    assert failed["status"] == "failed"
    assert failed["images"] is None
    error = failed["error"]
    assert error["type"] == "invalid_request"
    assert error["code"] == "face.multiple"
    [count] = [c for c in error["checks"] if c["name"] == "face_count"]
    assert count["passed"] is False and count["value"] >= 2
    image = client.get(f"/v1/avatars/{avatar['id']}/image")
    assert image.status_code == 409
    assert image.json()["error"]["code"] == "avatar.failed"


def test_wait_answers_422_with_the_avatar_id_when_rejected_in_time(
    stack: Stack, client: httpx.Client
) -> None:
    response = upload_file(client, "reject_no_face.png", wait=30)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "face.none"
    assert error["checks"]
    assert stack.finished(client, error["avatar_id"])["error"]["code"] == "face.none"


def test_delete_removes_every_object_and_the_row(
    stack: Stack, client: httpx.Client, s3: SeaweedS3
) -> None:
    avatar = accepted(upload_file(client, "cmyk.jpg"))
    assert stack.finished(client, avatar["id"])["status"] == "ready"
    prefix = f"avatars/{avatar['id']}/"
    assert s3.keys(prefix, stack.settings.s3_bucket) == sorted(
        prefix + name for name in ("1x1.jpg", "3x4.jpg", "4x3.jpg", "original", "record.json")
    )
    response = client.delete(f"/v1/avatars/{avatar['id']}")
    assert response.status_code == 204
    assert s3.keys(prefix, stack.settings.s3_bucket) == []
    assert client.get(f"/v1/avatars/{avatar['id']}").status_code == 404
    assert avatar["id"] not in avatar_statuses(stack.settings)
    # Deleted bytes are no longer a duplicate: uploading them again makes a new avatar.
    again = accepted(upload_file(client, "cmyk.jpg"))
    assert again["id"] != avatar["id"]
    assert stack.finished(client, again["id"])["status"] == "ready"


def refused(client: httpx.Client, response: httpx.Response, status: int, code: str) -> str:
    """The error message of a refusal made before any avatar existed."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and "avatar_id" not in error
    return str(error["message"])


def test_redirect_to_a_private_address_is_refused_url_forbidden(
    client: httpx.Client, images: ImageServer
) -> None:
    before = len(client.get("/v1/avatars", params={"limit": 100}).json()["data"])
    url = f"{images.base_url}/redirect?to=http://10.0.0.1/portrait.jpg"
    message = refused(client, upload_json(client, url), 400, "image.url_forbidden")
    assert "10.0.0.1" in message
    assert len(client.get("/v1/avatars", params={"limit": 100}).json()["data"]) == before


def test_url_that_never_answers_is_refused_fetch_timeout(
    client: httpx.Client, images: ImageServer
) -> None:
    refused(client, upload_json(client, images.silent_url), 400, "image.fetch_timeout")


def test_url_that_answers_404_is_refused_fetch_failed(
    client: httpx.Client, images: ImageServer
) -> None:
    response = upload_json(client, f"{images.base_url}/nothing.jpg", wait=5)
    refused(client, response, 400, "image.fetch_failed")


def test_a_host_that_does_not_resolve_is_503_for_now(client: httpx.Client) -> None:
    response = upload_json(client, "https://no-such-host.invalid/portrait.jpg")
    refused(client, response, 503, "image.fetch_failed")
    assert int(response.headers["retry-after"]) >= 1


def test_list_shows_this_accounts_avatars_newest_first(stack: Stack, client: httpx.Client) -> None:
    listed = client.get("/v1/avatars", params={"limit": 100}).json()
    assert listed["object"] == "list"
    ids = [a["id"] for a in listed["data"]]
    assert ids and ids == sorted(ids, reverse=True)
    with stack.client(stack.new_key("flow-empty")) as other:
        assert other.get("/v1/avatars").json()["data"] == []


def test_validate_by_url_answers_the_verdict_and_stores_nothing(
    stack: Stack, client: httpx.Client, images: ImageServer
) -> None:
    # The API process fetches and judges it: no worker, no row, no object.
    before = client.get("/v1/avatars", params={"limit": 100}).json()["data"]
    response = client.post(
        "/v1/avatars/validate", json={"image": f"{images.base_url}/accept_astronaut.png"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "accept" and body["source"]["format"] == "png"
    assert set(body["images"]) == {"1:1", "4:3", "3:4"}
    animal = client.post(
        "/v1/avatars/validate", files={"file": ("a.png", sample("reject_animal.png"))}
    )
    assert animal.json()["verdict"] == "reject"
    assert client.get("/v1/avatars", params={"limit": 100}).json()["data"] == before
