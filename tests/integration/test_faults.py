"""Nothing accepted is lost: faults injected into the real processes, each test
ending with every accepted upload `ready` or `failed`, no avatar left queued or
processing, and no stored object without its row.

- the worker's pool process killed (SIGKILL) in the middle of a task (held there
  by a lock on its avatar's row, taken by the test);
- SeaweedFS stopped while work is queued, and started again;
- the broker unreachable from the API when an upload arrives;
- SeaweedFS stopped when an avatar is deleted.

One worker process (concurrency 1) with the sweeper every second, so the test
knows which process holds the task and the swept uploads move quickly.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from harness.local_stack import free_port, start_api
from tests.integration.harness import (
    Stack,
    sample,
)
from tests.services import SeaweedS3

UPLOAD = "/v1/avatars/upload-face"
# Guards against a hung test, not a timing assertion.
OUTAGE_TIMEOUT_SECONDS = 60.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("nothing_orphaned_after_each"),
    pytest.mark.stack(
        sweep_interval_seconds=1.0,
        stuck_after_seconds=20.0,
        # Enough retries (backoff 2, 4, 8, ... s with full jitter) to outlast
        # the storage outage below.
        task_max_retries=8,
    ),
]


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.new_key("faults")) as c:
        yield c


def pool_pid(stack: Stack) -> int:
    """The pid of the worker's one live pool process, once it has logged that its
    models and services are open (the beat process, also a child, never does)."""
    assert stack.worker is not None
    deadline = time.monotonic() + 60
    while True:
        logged = {int(p) for p in re.findall(r"worker process (\d+) ready", stack.worker.log())}
        live = sorted(logged & set(stack.worker.children()))
        if live:
            [pid] = live
            return pid
        assert time.monotonic() < deadline, stack.worker.log()[-4000:]
        time.sleep(0.1)


def test_pool_process_killed_mid_task_is_redelivered_and_finishes(
    stack: Stack, client: httpx.Client
) -> None:
    assert stack.worker is not None
    victim = pool_pid(stack)
    engine = create_engine(stack.settings.database_url)
    try:
        with engine.connect() as lock, engine.connect() as watch:
            with stack.worker_frozen():  # so the row is locked before the worker sees it
                response = client.post(UPLOAD, files={"file": ("gif.gif", sample("gif.gif"))})
                assert response.status_code == 202, response.text
                avatar_id = response.json()["id"]
                lock.execute(
                    text("SELECT id FROM avatars WHERE id = :id FOR UPDATE"), {"id": avatar_id}
                )
            # The worker takes the task and waits for the row in its claim: mid-task.
            blocked = text(
                "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
            )
            lock_pid = lock.execute(text("SELECT pg_backend_pid()")).scalar_one()
            deadline = time.monotonic() + 60
            while not watch.execute(blocked, {"pid": lock_pid}).scalar_one():
                watch.rollback()  # pg_stat_activity is a snapshot per transaction
                assert time.monotonic() < deadline, stack.logs()[-4000:]
                time.sleep(0.05)
            os.kill(victim, signal.SIGKILL)
            lock.rollback()  # the redelivered run claims it at once
    finally:
        engine.dispose()
    finished = stack.finished(client, avatar_id)
    assert finished["status"] == "ready", finished["error"]
    log = stack.worker.log()
    assert re.search(rf"pid:{victim} exited with 'signal 9", log), log[-4000:]
    # A new pool process took the victim's place.
    assert pool_pid(stack) != victim


def test_storage_down_while_work_is_queued(
    stack: Stack, client: httpx.Client, s3: SeaweedS3
) -> None:
    assert stack.worker is not None
    names = ["accept_portrait.jpg", "progressive.jpg", "display_p3.jpg", "palette.png"]
    retried = re.compile(r"storage\.unavailable .*; retry \d+ of 8")
    retries_before = len(retried.findall(stack.worker.log()))
    # Freeze the worker so the uploads wait in the queue, their originals stored.
    os.killpg(stack.worker.pid, signal.SIGSTOP)
    try:
        ids = []
        for name in names:
            response = client.post(UPLOAD, files={"file": (name, sample(name))})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        s3.stop()
    finally:
        os.killpg(stack.worker.pid, signal.SIGCONT)
    try:
        # Storage stays down until the worker has met the outage and retried, so
        # it is outlasted by retries, not missed by luck.
        deadline = time.monotonic() + OUTAGE_TIMEOUT_SECONDS
        while len(retried.findall(stack.worker.log())) == retries_before:
            assert time.monotonic() < deadline, stack.worker.log()[-4000:]
            time.sleep(0.1)
    finally:
        s3.start()
    finished = [stack.finished(client, i) for i in ids]
    for avatar in finished:
        assert avatar["status"] == "ready", avatar["error"]


def test_broker_unreachable_at_upload_is_sent_later_by_the_sweeper(
    stack: Stack, client: httpx.Client, module_dir: Path
) -> None:
    assert stack.worker is not None
    # A second API process whose broker address has nothing listening: the same
    # registry and storage, so the worker (on the real broker) sees its rows.
    dead_broker = stack.settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    api, base_url = start_api(dead_broker, module_dir / "api-dead-broker.log")
    try:
        with httpx.Client(base_url=base_url, headers=client.headers, timeout=60) as cut_off:
            ready = cut_off.get("/readyz")
            assert ready.status_code == 503, ready.text
            response = cut_off.post(
                UPLOAD, files={"file": ("astro.png", sample("accept_astronaut.png"))}
            )
    finally:
        api.stop()
    assert response.status_code == 202, response.text
    avatar = response.json()
    assert avatar["status"] == "queued"
    assert "enqueue failed" in api.log()
    finished = stack.finished(client, avatar["id"])
    assert finished["status"] == "ready", finished["error"]
    requeued = stack.worker.says("sweeper re-enqueued", OUTAGE_TIMEOUT_SECONDS)
    assert requeued, stack.worker.log()[-4000:]


def test_storage_down_at_a_delete_answers_and_the_sweeper_empties_the_folder(
    stack: Stack, client: httpx.Client, s3: SeaweedS3
) -> None:
    assert stack.worker is not None
    response = client.post(UPLOAD, files={"file": ("webp.webp", sample("webp.webp"))})
    assert response.status_code == 202, response.text
    avatar_id = response.json()["id"]
    assert stack.finished(client, avatar_id)["status"] == "ready"
    folder = f"avatars/{avatar_id}/"
    bucket = stack.settings.s3_bucket
    assert s3.keys(folder, bucket=bucket)
    s3.stop()
    try:
        deleted = client.delete(f"/v1/avatars/{avatar_id}")
        assert deleted.status_code == 204, deleted.text
        assert client.get(f"/v1/avatars/{avatar_id}").status_code == 404
        pending = re.compile(r"^avatar_prep_storage_deletions_pending (\S+)$", re.MULTILINE)
        assert pending.findall(client.get("/metrics").text) == ["1.0"]
    finally:
        s3.start()
    deadline = time.monotonic() + OUTAGE_TIMEOUT_SECONDS
    while s3.keys(folder, bucket=bucket):
        assert time.monotonic() < deadline, stack.worker.log()[-4000:]
        time.sleep(0.1)
    # The sweeper logs once the registry row is gone too, after the objects.
    emptied = "sweeper emptied the folders of 1 deleted avatars"
    assert stack.worker.says(emptied, OUTAGE_TIMEOUT_SECONDS), stack.worker.log()[-4000:]
    assert pending.findall(client.get("/metrics").text) == ["0.0"]
