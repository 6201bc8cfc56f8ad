"""Every format, mode and bit depth at the limits, decoded in bounded memory and time.

The corpus (tests/pipeline/corpus.py) is made here, under a temporary folder, and
every file runs through sniff, probe and decode as the pipeline runs them, each in
a child process of its own (tests/pipeline/decode_bounds_runner.py), two at a time,
each on one core. Done means: no exception other than an ImageError with a
documented code, every file within the limits decoded and every other refused with
the code it earns, and no file, within the limits or not, taking a process to 350 MB.
The table of peak RSS and time per file is printed, the worst named; times are
shown, and only a runaway (over 20 s) fails.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from api.errors import CODES
from tests.pipeline.corpus import ENTRIES, expectation, write_entry
from tests.pipeline.decode_bounds_runner import DECODE_CODES

MAX_PEAK_RSS = 350_000_000
RUNAWAY_SECONDS = 20.0
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("decode-corpus")
    names = [entry.name for entry in ENTRIES]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        written = pool.map(write_entry, names, [str(folder)] * len(names))
        return sorted(folder / name for files in written for name in files)


def run_corpus(files: list[Path]) -> list[dict]:
    """Both halves at once, one per core; one JSON line per file."""
    env = {
        **os.environ,
        "VIPS_CONCURRENCY": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cpus = sorted(os.sched_getaffinity(0))[:2]
    runners = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.pipeline.decode_bounds_runner",
                "--cpu",
                str(cpu),
                *map(str, files[index :: len(cpus)]),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # Pillow's and libvips' warnings on cut files
            text=True,
        )
        for index, cpu in enumerate(cpus)
    ]
    results = []
    for runner in runners:
        out, _ = runner.communicate(timeout=600)
        assert runner.returncode == 0, out[-2000:]
        results += [json.loads(line) for line in out.splitlines()]
    return sorted(results, key=lambda r: r["name"])


def table(results: list[dict]) -> str:
    lines = [
        f"{'file':34} {'bytes':>10} {'outcome':24} {'peak MB':>8} {'growth':>7} {'s':>6}",
    ]
    for r in results:
        outcome = r.get("code") or r["outcome"]
        lines.append(
            f"{r['name']:34} {r['bytes']:>10} {outcome:24} {r['peak_rss'] / 1e6:>8.0f} "
            f"{r.get('growth', 0) / 1e6:>7.0f} {r.get('seconds', 0):>6.2f}"
        )
    worst = max(results, key=lambda r: r["peak_rss"])
    slowest = max(results, key=lambda r: r.get("seconds", 0))
    lines.append(
        f"worst peak: {worst['name']} {worst['peak_rss'] / 1e6:.0f} MB "
        f"(process baseline {worst['baseline'] / 1e6:.0f} MB); "
        f"slowest: {slowest['name']} {slowest['seconds']:.2f} s"
    )
    return "\n".join(lines)


def test_corpus_decodes_in_bounded_memory_and_time(corpus, capsys):
    assert len(corpus) >= 80
    results = run_corpus(corpus)
    with capsys.disabled():
        print("\n" + table(results))
    assert [r["name"] for r in results] == [p.name for p in corpus]
    assert set(CODES) >= DECODE_CODES
    for r in results:
        name, outcome = r["name"], r["outcome"]
        assert outcome in ("decoded", "refused"), f"{name}: {outcome} {r.get('error')}"
        expected = expectation(name)
        if outcome == "refused":
            assert r["code"] in DECODE_CODES, name
        if expected.accepted is True:
            assert outcome == "decoded", f"{name}: {r.get('code')}"
        elif expected.accepted is False:
            assert r.get("code") in expected.refusals, f"{name}: {outcome} {r.get('code')}"
        assert r["peak_rss"] < MAX_PEAK_RSS, f"{name}: {r['peak_rss'] / 1e6:.0f} MB"
        assert r.get("seconds", 0) < RUNAWAY_SECONDS, name
