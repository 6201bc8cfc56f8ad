"""`avatar-prep batch --upload --key KEY`: accepted files become avatars of the
key's account, through the same service path as an API upload.

Through the real command on the embedded defaults (SQLite, local storage), and
through the real pool on PostgreSQL and SeaweedFS."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli import batch_worker
from cli.batch import run_batch
from cli.batch_worker import Job, Upload, no_broker
from pipeline import FaceModels
from sample_images import SAMPLES
from service import processing
from service.registry import upgrade
from service.runtime import Services
from service.settings import Settings
from service.storage import avatar_prefix, rendition_key
from tests.services import SeaweedS3

PHOTOS = ("accept_portrait.jpg", "accept_astronaut.png", "reject_multiple_faces.jpg")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def report_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def test_batch_upload_registers_each_accept_once_on_the_embedded_defaults(
    tmp_path: Path, photos: Path
) -> None:
    var = tmp_path / "var"
    env = {
        "AVATAR_PREP_DATA_DIR": str(var),
        "AVATAR_PREP_DATABASE_URL": f"sqlite:///{var}/avatar-prep.db",
        "AVATAR_PREP_STORAGE_DIR": str(var / "storage"),
    }
    var.mkdir()
    assert cli(env, "db", "upgrade").returncode == 0
    made = cli(env, "keys", "create", "--account", "batcher", "--plan", "paid")
    key = next(word for word in made.stdout.split() if word.startswith("ak_live_"))

    run = cli(env, "batch", str(photos), "-o", str(tmp_path / "out"), "--upload", "--key", key)
    assert run.returncode == 0, run.stderr
    rows = report_rows(tmp_path / "out" / "report.csv")
    assert rows["reject_multiple_faces.jpg"]["avatar_id"] == ""
    ids = {name: rows[name]["avatar_id"] for name in PHOTOS[:2]}
    assert all(i.startswith("avat_") for i in ids.values()) and len(set(ids.values())) == 2

    settings = Settings(**{k.removeprefix("AVATAR_PREP_").lower(): v for k, v in env.items()})
    services = Services.create(settings, no_broker)
    try:
        account = services.keys.authenticate(key).id
        for name, avatar_id in ids.items():
            avatar = services.avatars.get(account, avatar_id)
            assert avatar.status == "ready" and avatar.name == name
            assert services.avatars.image(account, avatar_id, "4:3").data
        listed, _ = services.avatars.list(account, limit=10, starting_after=None, status=None)
        assert sorted(a.id for a in listed) == sorted(ids.values())
    finally:
        services.close()

    # The same bytes again: the existing avatars, nothing new.
    again = cli(env, "batch", str(photos), "-o", str(tmp_path / "out2"), "--upload", "--key", key)
    assert again.returncode == 0, again.stderr
    rows = report_rows(tmp_path / "out2" / "report.csv")
    assert {name: rows[name]["avatar_id"] for name in PHOTOS[:2]} == ids


def test_batch_upload_needs_a_valid_key(tmp_path: Path, photos: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    env = {"AVATAR_PREP_DATABASE_URL": f"sqlite:///{var}/db.sqlite"}
    assert cli(env, "db", "upgrade").returncode == 0
    out = str(tmp_path / "out")
    no_key = cli(env, "batch", str(photos), "-o", out, "--upload")
    assert no_key.returncode == 2 and "--key" in no_key.stderr
    unknown = cli(env, "batch", str(photos), "-o", out, "--upload", "--key", "ak_live_unknown")
    assert unknown.returncode == 2 and "unknown or revoked" in unknown.stderr
    assert not Path(out).exists()


@pytest.mark.integration
def test_batch_upload_stores_on_s3_and_postgresql(
    tmp_path: Path, photos: Path, service_settings: Settings, s3: SeaweedS3
) -> None:
    services = Services.create(service_settings, no_broker)
    try:
        _, key = services.keys.create("batch-s3", "paid")
        account = services.keys.authenticate(key).id
        summary = run_batch(
            photos,
            tmp_path / "out",
            tmp_path / "report.csv",
            2,
            service_settings.pipeline,
            upload=Upload(service_settings, account),
        )
        uploaded = {r.path: r.avatar_id for r in summary.processed if r.avatar_id}
        assert sorted(uploaded) == sorted(PHOTOS[:2])
        for avatar_id in uploaded.values():
            assert services.avatars.get(account, avatar_id).status == "ready"
            stored = s3.keys(avatar_prefix(avatar_id))
            assert {k.rsplit("/", 1)[1] for k in stored} == {
                "original",
                "1x1.jpg",
                "4x3.jpg",
                "3x4.jpg",
                "record.json",
            }
    finally:
        services.close()


def test_batch_upload_runs_the_pipeline_once_per_accepted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result the output folder is written from is the avatar's: the service's
    own pipeline call (service.processing.prepare) is never made."""
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'var' / 'avatar-prep.db'}",
        storage_dir=tmp_path / "var" / "storage",
    )
    upgrade(settings)
    services = Services.create(settings, no_broker)
    _, key = services.keys.create("once", "paid")
    account = services.keys.authenticate(key).id

    def second_run(*_: object) -> None:
        raise AssertionError("the pipeline ran a second time for the upload")

    monkeypatch.setattr(processing, "prepare", second_run)
    with FaceModels.load() as models:
        this_process = batch_worker._Worker(settings.pipeline, models, "")
        monkeypatch.setattr(batch_worker, "_worker", this_process)
        job = Job(
            SAMPLES / PHOTOS[0],
            PHOTOS[0],
            tmp_path / "out",
            "portrait",
            upload=Upload(settings, account),
        )
        row = batch_worker.process_job(job)
        worker_services = this_process.services
    try:
        assert row.verdict == "accept" and row.avatar_id.startswith("avat_"), row
        avatar = services.avatars.get(account, row.avatar_id)
        assert avatar.status == "ready"
        stored = services.storage.get(rendition_key(row.avatar_id, "1:1"))
        assert stored == (tmp_path / "out" / "portrait" / "avatar_1x1.jpg").read_bytes()
    finally:
        if worker_services is not None:
            worker_services.close()
        services.close()
