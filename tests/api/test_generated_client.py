"""A client generated from our /openapi.json (openapi-python-client, as an
integrator would make one) works against the real service: every operation is
generated; an upload, a poll, an image, a session and an error go through it, a
ready avatar reading as typed objects (`face.pose.yaw` a float, `created_at` a
datetime), an error as the envelope, an image as bytes."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from pipeline import FaceModels
from sample_images import SAMPLES
from tests.api.embedded import Embedded, embedded_app, embedded_settings

pytestmark = pytest.mark.anyio

PACKAGE = "avatar_prep_client"
# The generator skips responses of media types it does not know; an image is bytes.
CONFIG = {"content_type_overrides": {"image/jpeg": "application/octet-stream"}}


@pytest.fixture
def service(tmp_path: Path, models: FaceModels) -> Iterator[Embedded]:
    with embedded_app(embedded_settings(tmp_path / "service"), models) as e:
        yield e


def generate(spec: dict[str, Any], root: Path) -> str:
    """Run the generator on `spec` into `root`; what it printed."""
    (root / "openapi.json").write_text(json.dumps(spec))
    (root / "config.json").write_text(json.dumps(CONFIG))
    bin_dir = Path(sys.executable).parent  # the generator formats with ruff from here
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(root / "openapi.json"),
            "--output-path",
            str(root / "client"),
            "--config",
            str(root / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture
def client_package(service: Embedded, tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    """The generated package's modules this test uses, imported from `tmp_path`."""
    printed = generate(service.app.openapi(), tmp_path)
    assert "WARNING" not in printed, printed
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        names = ["client", "models", "api.avatars.upload_face", "api.avatars.get_avatar"]
        names += ["api.avatars.get_avatar_image", "api.sessions.create_session"]
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]


async def test_a_generated_client_reads_typed_avatars_errors_and_images(
    service: Embedded, client_package: dict[str, ModuleType]
) -> None:
    modules = client_package
    models = modules["models"]
    transport = httpx.ASGITransport(app=service.app)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {service.paid_key}"},
        ) as http,
    ):
        client = modules["client"].AuthenticatedClient(
            base_url="http://testserver", token=service.paid_key
        )
        client.set_async_httpx_client(http)
        data = base64.b64encode((SAMPLES / "accept_portrait.jpg").read_bytes()).decode()
        queued = await modules["api.avatars.upload_face"].asyncio(
            client=client, body=models.UploadFaceJson(image=data, name="Ada")
        )
        assert isinstance(queued, models.Avatar), queued
        assert queued.status == models.AvatarStatus.QUEUED
        assert isinstance(queued.created_at, datetime)

        service.services.avatars.process(queued.id)  # the worker's part, in-process
        ready = await modules["api.avatars.get_avatar"].asyncio(queued.id, client=client)
        assert isinstance(ready, models.Avatar)
        assert ready.status == models.AvatarStatus.READY
        assert isinstance(ready.face.pose.yaw, float)
        assert abs(ready.face.pose.yaw) < 20  # a frontal portrait
        assert len(ready.face.landmarks.left_eye) == 2
        assert ready.face.quality.brightness > 0
        assert isinstance(ready.ready_at, datetime)
        assert {c.name for c in ready.checks} >= {"face_count", "yaw"}

        image = await modules["api.avatars.get_avatar_image"].asyncio(
            queued.id, client=client, aspect_ratio=models.AspectRatio("4:3")
        )
        assert image.payload.read()[:3] == b"\xff\xd8\xff"

        started = await modules["api.sessions.create_session"].asyncio(
            client=client,
            body=models.CreateSessionRequest(
                avatar_id=queued.id,
                room=models.RoomRequest(
                    platform=models.RoomRequestPlatform("livekit"), url="wss://demo.livekit.cloud"
                ),
            ),
        )
        assert isinstance(started, models.CreatedSession), started
        assert started.avatar_image.aspect_ratio == models.AspectRatio("4:3")
        assert isinstance(started.expires_at, datetime)

        missing = await modules["api.avatars.get_avatar"].asyncio(
            "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX", client=client
        )
        assert isinstance(missing, models.ErrorEnvelope)
        assert missing.error.code == "avatar.not_found"
