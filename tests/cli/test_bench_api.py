"""`avatar-prep bench-api`: its parts on real photos, and the whole command
starting its own API and worker on the embedded defaults (no server needed)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.load import percentile, unique_jpeg
from harness.local_stack import ENV_PREFIX
from sample_images import BENCH_PHOTOS as IMAGES
from sample_images import SAMPLES


def test_unique_jpeg_changes_the_bytes_but_not_the_picture() -> None:
    data = (SAMPLES / IMAGES["1mp"]).read_bytes()
    a, b = unique_jpeg(data), unique_jpeg(data)
    assert len({hashlib.sha256(x).digest() for x in (data, a, b)}) == 3
    original, commented = (np.asarray(Image.open(io.BytesIO(x))) for x in (data, a))
    assert np.array_equal(original, commented)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 41)]
    assert percentile(values, 50) == 20.0
    assert percentile(values, 99) == 40.0
    assert percentile([7.0], 99) == 7.0


@pytest.mark.slow
def test_start_mode_measures_every_upload_and_session(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    command = [str(Path(sys.executable).parent / "avatar-prep"), "bench-api", "--start"]
    args = ["-n", "3", "-c", "2", "--sequential", "2", "--workers", "1", "--images", "1mp"]
    done = subprocess.run(
        command + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # One row for one upload at a time (2 uploads), one for 2 clients (3 uploads),
    # neither with a failed or refused upload (the last two columns).
    assert re.search(r"^\s*1\s+1mp\s+1 by 1\s+2\s.*\s0\s+0$", out, re.MULTILINE), out
    assert re.search(r"^\s*1\s+1mp\s+2\s+3\s.*\s0\s+0$", out, re.MULTILINE), out
    # Sessions, from the same run: by id one at a time (2 sessions) and from 2
    # clients (3), by URL one at a time (2, with the paired pipeline figures) and
    # from 2 clients (3): every one started, none refused.
    assert re.search(r"^\s*1\s+1mp\s+id\s+1 by 1\s+2\s.*\s0$", out, re.MULTILINE), out
    assert re.search(r"^\s*1\s+1mp\s+id\s+2\s+3\s.*\s0$", out, re.MULTILINE), out
    by_url = r"^\s*1\s+1mp\s+url\s+1 by 1\s+2\s+\d+ /\s*\d+\s+\d+\s+-?\d+\s+0$"
    assert re.search(by_url, out, re.MULTILINE), out
    assert re.search(r"^\s*1\s+1mp\s+url\s+2\s+3\s.*\s0$", out, re.MULTILINE), out
    # The embedded defaults kept everything under the working directory.
    assert (tmp_path / "var" / "avatar-prep.db").is_file()
