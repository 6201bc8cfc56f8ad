"""The session part of `avatar-prep bench-api`: the photo server and the figures.
The whole command's session rows are checked in test_bench_api.py, from the same
run as its upload rows."""

from __future__ import annotations

import hashlib
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.bench_sessions import Answer, PhotoServer, session_run
from sample_images import BENCH_PHOTOS as IMAGES
from sample_images import SAMPLES


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
