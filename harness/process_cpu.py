"""CPU time of the service's processes, from their own counters (Linux /proc), and
the workers' CPU inside prepare() (from the API's /metrics): what `avatar-prep
bench-api --start` turns into "CPU ms per upload outside the pipeline".

CPU, not wall time, because a shared 2-core machine makes wall figures noisy,
and CPU is what a fleet pays for.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PIPELINE_CPU_METRIC = "avatar_prep_task_pipeline_cpu_seconds_total"


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and every live descendant (a
    worker's pool processes and beat), plus what its reaped children used. 0 for
    a process that is gone."""
    total = 0.0
    for one in _tree(pid):
        fields = _stat_fields(one)
        if fields is None:
            continue
        # After "pid (comm)": utime, stime, cutime, cstime are fields 14-17 of stat,
        # i.e. 11-14 of what follows the comm.
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        total += utime + stime + (cutime + cstime if one == pid else 0)
    return total / CLOCK_TICKS


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after its last ")".
    return text[text.rindex(")") + 2 :].split()


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        for task in Path(f"/proc/{one}/task").glob("*"):
            try:
                todo += [int(p) for p in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def pipeline_cpu_seconds(client: httpx.Client) -> float:
    """The workers' CPU seconds inside prepare() so far, summed over the pool
    processes, as the API's /metrics reports it (0 when it reports none)."""
    text = client.get("/metrics").text
    pattern = rf"^{PIPELINE_CPU_METRIC}\{{[^}}]*\}} ([0-9.eE+-]+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of the API's and the worker's process trees, and of the
    workers inside prepare()."""

    api: float
    worker: float
    pipeline: float


@dataclass(frozen=True)
class CpuProbe:
    """Reads the CPU counters of a stack started here (`api_pid`, `worker_pid`)."""

    api_pid: int
    worker_pid: int

    def sample(self, client: httpx.Client) -> CpuSample:
        pipeline = pipeline_cpu_seconds(client)
        return CpuSample(
            api=tree_cpu_seconds(self.api_pid),
            worker=tree_cpu_seconds(self.worker_pid),
            pipeline=pipeline,
        )


@dataclass(frozen=True)
class CpuPerUpload:
    """CPU milliseconds per upload over a run: the API's, the worker's outside
    prepare(), and the workers' inside it."""

    api_ms: float
    worker_ms: float
    pipeline_ms: float

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample, uploads: int) -> CpuPerUpload:
        per = 1000.0 / max(1, uploads)
        pipeline = after.pipeline - before.pipeline
        return cls(
            api_ms=(after.api - before.api) * per,
            worker_ms=(after.worker - before.worker - pipeline) * per,
            pipeline_ms=pipeline * per,
        )

    @property
    def outside_ms(self) -> float:
        """What the service costs per upload around the pipeline: API + worker."""
        return self.api_ms + self.worker_ms
