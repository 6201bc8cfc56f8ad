"""The session part of `avatar-prep bench-api`: the photo server, the figures, and
the whole command's session rows when it starts its own API and worker on the
embedded defaults (no server needed)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from cli.bench_api import IMAGES, SAMPLES
from cli.bench_sessions import Answer, PhotoServer, session_run
from cli.local_stack import ENV_PREFIX


def test_the_photo_server_sends_the_same_picture_with_new_bytes_each_time() -> None:
    data = (SAMPLES / IMAGES["1mp"]).read_bytes()
    with PhotoServer.running({"1mp": data}) as server:
        url = server.url("1mp")
        assert url.startswith("http://127.0.0.1:") and url != server.url("1mp")
        first, second = httpx.get(url, timeout=10), httpx.get(url, timeout=10)
        missing = httpx.get(url.replace("/1mp/", "/12mp/"), timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(first.content).digest() != hashlib.sha256(second.content).digest()
    pictures = [np.asarray(Image.open(io.BytesIO(b))) for b in (data, first.content)]
    assert np.array_equal(*pictures)
    assert missing.status_code == 404


def test_a_run_counts_refusals_and_pairs_the_pipeline_only_when_every_round_started() -> None:
    answers = [Answer(120.0, "sess_a", "avat_a"), Answer(90.0, "sess_b", "avat_b")]
    paired = session_run(None, "1mp", "url", 1, answers, 0.21, [70.0, 60.0])
    assert (paired.latency_ms, paired.refused, paired.added_ms) == ([120.0, 90.0], 0, [50.0, 30.0])
    assert paired.per_second == pytest.approx(2 / 0.21)
    refused = session_run(
        1, "1mp", "url", 1, [*answers, Answer(5.0, None, None)], 0.3, [1.0, 1.0, 1.0]
    )
    assert (refused.refused, refused.pipeline_ms, refused.added_ms) == (1, [], [])


@pytest.mark.slow
def test_start_mode_measures_sessions_by_id_and_by_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    command = [str(Path(sys.executable).parent / "avatar-prep"), "bench-api", "--start"]
    args = ["-n", "3", "-c", "2", "--sequential", "2", "--workers", "1", "--images", "1mp"]
    done = subprocess.run(
        command + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # By id from 2 clients (3 sessions), by URL one at a time (2, with the paired
    # pipeline figures) and from 2 clients (3): every one started, none refused.
    assert re.search(r"^\s*1\s+1mp\s+id\s+2\s+3\s.*\s0$", out, re.MULTILINE), out
    by_url = r"^\s*1\s+1mp\s+url\s+1 by 1\s+2\s+\d+ /\s*\d+\s+\d+\s+-?\d+\s+0$"
    assert re.search(by_url, out, re.MULTILINE), out
    assert re.search(r"^\s*1\s+1mp\s+url\s+2\s+3\s.*\s0$", out, re.MULTILINE), out
