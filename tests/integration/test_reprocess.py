"""`avatar-prep reprocess` on the real stack: the command as a subprocess, the
re-render in a real Celery worker, on PostgreSQL, Redis and SeaweedFS; the
avatars read back through the real API.

The "old" avatars are made in this process by the real service code under the
framing before issue 7 (no zoom, no slide, fill only warned); the stack runs the
current one, which rejects a 4:3 filled above 25%, so the photo cropped tighter
than its face changes verdict."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.local_stack import run
from pipeline import FaceModels, prepare
from pipeline.settings import PipelineSettings
from service.processing import Processor
from service.runtime import Services
from tests.integration.harness import Stack, assert_nothing_orphaned, sample
from tests.service.conftest import FakeBroker, upload
from tests.services import SeaweedS3

OLD_FRAMING = PipelineSettings(max_framing_zoom=1.0, max_face_offcentre=0.0, max_fill_ratio=None)
CURRENT = PipelineSettings()
ACCOUNT = "reprocess"
# Old renditions are discarded once presigned URLs made before the switch have
# expired: PRESIGN_SECONDS here, enough for the test to see them still there after
# the command (and to fetch its own presigned URLs) on a loaded machine.
PRESIGN_SECONDS = 10
# Guards against a hung test, not a timing assertion.
DISCARD_TIMEOUT_SECONDS = 60.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.stack(pipeline=CURRENT, s3_presign_seconds=PRESIGN_SECONDS),
]


def made_with_old_framing(stack: Stack, models: FaceModels, key: str, name: str) -> str:
    """An avatar of sample `name` on the stack's database and storage, processed
    in this process under the old framing; its id."""
    settings = stack.settings.model_copy(update={"pipeline": OLD_FRAMING})
    services = Services.create(settings, FakeBroker(), models)
    try:
        account_id = services.keys.authenticate(key).id
        avatar, _ = upload(services, account_id, sample(name))
        Processor(settings, services.registry, services.storage, FakeBroker(), models).process(
            avatar.id
        )
    finally:
        services.close()
    return str(avatar.id)


def image(client: httpx.Client, avatar_id: str, ratio: str) -> bytes:
    response = client.get(f"/v1/avatars/{avatar_id}/image", params={"aspect_ratio": ratio})
    assert response.status_code == 302, response.text
    fetched = httpx.get(response.headers["location"], timeout=10)
    assert fetched.status_code == 200
    return fetched.content


def test_reprocess_rerenders_old_avatars_in_place_and_reports_changed_verdicts(
    stack: Stack, s3: SeaweedS3, models: FaceModels
) -> None:
    key = stack.new_key(ACCOUNT)
    portrait = made_with_old_framing(stack, models, key, "accept_portrait.jpg")
    tight = made_with_old_framing(stack, models, key, "reject_tight_crop.jpg")
    client = stack.client(key)
    old_portrait = image(client, portrait, "4:3")
    old_tight = image(client, tight, "4:3")
    bucket = stack.settings.s3_bucket  # the module's own (tests/integration/conftest.py)
    before = s3.keys("avatars/", bucket)

    dry = run(stack.settings, "reprocess", "--account", ACCOUNT, "--dry-run")
    assert "2 to reprocess" in dry, dry
    assert f"would reprocess {portrait}" in dry and f"would reprocess {tight}" in dry, dry
    assert s3.keys("avatars/", bucket) == before
    assert image(client, portrait, "4:3") == old_portrait

    out = run(stack.settings, "reprocess", "--account", ACCOUNT)
    # The portrait's replaced objects stay while presigned URLs to them may be live.
    replaced = {f"avatars/{portrait}/{name}" for name in ("1x1.jpg", "4x3.jpg", "3x4.jpg")}
    assert replaced <= set(s3.keys("avatars/", bucket))
    assert "[2/2]" in out, out + stack.logs()[-4000:]
    assert f"{portrait}: replaced" in out, out
    assert f"{tight}: verdict_changed accepted -> face.framing" in out, out
    assert "1 verdict changes, not applied" in out, out

    # Same id, still ready, now with the current framing (same bytes as a fresh run).
    avatar = client.get(f"/v1/avatars/{portrait}").json()
    assert (avatar["id"], avatar["status"]) == (portrait, "ready")
    expected = prepare(sample("accept_portrait.jpg"), models, CURRENT).renditions["4:3"].data
    assert image(client, portrait, "4:3") == expected != old_portrait
    # The changed verdict was not applied: the old renditions and status stay.
    assert client.get(f"/v1/avatars/{tight}").json()["status"] == "ready"
    assert image(client, tight, "4:3") == old_tight

    # They go once those URLs have expired.
    deadline = time.monotonic() + DISCARD_TIMEOUT_SECONDS
    while replaced & set(s3.keys("avatars/", bucket)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not replaced & set(s3.keys("avatars/", bucket)), stack.logs()[-4000:]

    # A second run finds nothing to do, and changes nothing.
    settled = s3.keys("avatars/", bucket)
    again = run(stack.settings, "reprocess", "--account", ACCOUNT)
    assert "0 to reprocess, 1 already current, 1 verdict changes" in again, again
    assert f"verdict changed, not applied: {tight}" in again, again
    assert s3.keys("avatars/", bucket) == settled
    client.close()
    assert_nothing_orphaned(stack.settings, s3)
