"""bench-api's CPU counters: a process tree's CPU from /proc, the workers' CPU
inside prepare() from /metrics text."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from harness.process_cpu import CpuPerUpload, CpuSample, pipeline_cpu_seconds, tree_cpu_seconds


def test_tree_cpu_counts_a_busy_child() -> None:
    # A parent that sleeps and a child that spins: the tree's CPU is the child's.
    code = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'while True: pass']); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_seconds(parent.pid) < 0.5:
            assert time.monotonic() < deadline, "the spinning child used no CPU"
            time.sleep(0.05)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # its own group: the two processes above
        parent.wait()
    assert tree_cpu_seconds(parent.pid) == 0.0  # gone


def test_pipeline_cpu_is_summed_from_the_metrics_text() -> None:
    text = (
        "# HELP avatar_prep_task_pipeline_cpu_seconds_total x\n"
        'avatar_prep_task_pipeline_cpu_seconds_total{task="avatars.process"} 1.5\n'
        'avatar_prep_task_cpu_seconds_total{task="avatars.process"} 9.0\n'
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=text))
    with httpx.Client(transport=transport, base_url="http://api") as client:
        assert pipeline_cpu_seconds(client) == 1.5


def test_per_upload_takes_the_pipeline_out_of_the_worker() -> None:
    used = CpuPerUpload.between(CpuSample(1.0, 2.0, 0.5), CpuSample(1.2, 3.0, 1.3), 10)
    assert round(used.api_ms, 6) == 20.0
    assert round(used.pipeline_ms, 6) == 80.0
    assert round(used.worker_ms, 6) == 20.0  # 100 ms of worker CPU, 80 of it in prepare()
    assert round(used.outside_ms, 6) == 40.0
