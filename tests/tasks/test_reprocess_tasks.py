"""The reprocess tasks at the broker seam: what `CeleryReprocessQueue` publishes
(read back from the embedded filesystem broker's folder) and what the worker app
registers. The tasks' effect is tested in tests/service/test_reprocess.py and,
through a real worker, in tests/integration/test_reprocess.py."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from service.errors import TransientError
from service.settings import Settings
from tasks.celery_app import DISCARD_TASK, REPROCESS_TASK, make_celery
from tasks.reprocess import CeleryReprocessQueue
from tasks.worker import register_tasks

AVATAR_ID = "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX"


def published(settings: Settings) -> list[dict[str, Any]]:
    """The messages waiting in the filesystem broker: headers and decoded args."""
    messages = []
    for path in sorted((Path(settings.data_dir) / "broker" / "queue").iterdir()):
        message = json.loads(path.read_text())
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append({**message["headers"], "args": args})
    return messages


def test_reprocess_and_delayed_discard_reach_the_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    queue = CeleryReprocessQueue(make_celery(settings))
    queue.send_reprocess(AVATAR_ID, "run1")
    keys = [f"avatars/{AVATAR_ID}/4x3.jpg"]
    before = datetime.now().astimezone()
    queue.send_discard(AVATAR_ID, keys, 300)

    reprocess, discard = sorted(published(settings), key=lambda m: m["task"], reverse=True)
    assert (reprocess["task"], reprocess["args"], reprocess["eta"]) == (
        REPROCESS_TASK,
        [AVATAR_ID, "run1"],
        None,
    )
    assert (discard["task"], discard["args"]) == (DISCARD_TASK, [AVATAR_ID, keys])
    eta = datetime.fromisoformat(discard["eta"])
    assert before + timedelta(seconds=299) < eta < before + timedelta(seconds=310)


def test_the_worker_app_registers_the_reprocess_tasks_with_retries(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    app = make_celery(settings)
    register_tasks(app, settings)
    for name in (REPROCESS_TASK, DISCARD_TASK):
        task = app.tasks[name]
        assert TransientError in task.autoretry_for
        assert task.max_retries == settings.task_max_retries
