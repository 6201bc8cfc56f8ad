"""The coverage-guided fuzzer (tests/pipeline/fuzz_decode.py) over sniff, probe and
decode, for a bounded time: from small images of every format and mode, libFuzzer
mutates for FUZZ_SECONDS and must find nothing but ImageErrors with documented codes
(no other exception, no crash, no input over 10 s, no process over 1.5 GB)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_SECONDS = 20
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_fuzzer_finds_only_documented_errors(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    seeds, found, artifacts = tmp_path / "seeds", tmp_path / "found", tmp_path / "artifacts"
    for folder in (seeds, found, artifacts):
        folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VIPS_CONCURRENCY": "1"}
    module = [sys.executable, "-m", "tests.pipeline.fuzz_decode"]
    subprocess.run([*module, "--seeds", str(seeds)], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [
            *module,
            f"-max_total_time={FUZZ_SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=1500",
            f"-artifact_prefix={artifacts}/",
            str(found),
            str(seeds),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
    )
    log = "\n".join(
        line for line in done.stderr.splitlines() if not line.startswith("INFO: Instrumenting")
    )
    crashes = sorted(p.name for p in artifacts.iterdir())
    assert done.returncode == 0 and not crashes, f"{crashes}\n{log[-4000:]}"
    runs = [line for line in log.splitlines() if line.startswith("Done ")]
    assert runs, log[-2000:]
    print(runs[-1])
