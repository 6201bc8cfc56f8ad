"""Run batch jobs in a process pool where a crash costs one file, not the batch.

`process_job` already turns every Python exception into a row. What it cannot
catch is a worker process dying (a segfault in native code, the OOM killer):
the pool then fails every job in flight. Those jobs are rerun one at a time in
a fresh pool, so the file that kills a worker on its own is found and reported
as `worker.crashed`, and the others get their real rows.

Ctrl-C stops the batch once the files in flight are done and their rows written,
then raises KeyboardInterrupt (a second Ctrl-C raises at once). The first one
only sets a flag: an exception raised wherever the main thread happens to be
can land inside the executor's own locking (`concurrent.futures.wait` takes
each future's lock in turn) and leave a lock held that the pool's manager
thread then waits on forever, and the shutdown with it.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from types import FrameType

from cli.batch_worker import Job, failed_row, init_worker, process_job
from cli.report import Row
from pipeline import PipelineSettings

Worker = Callable[[Job], Row]
Initializer = Callable[[PipelineSettings], None]


def run_jobs(
    jobs: Iterable[Job],
    settings: PipelineSettings,
    workers: int,
    on_row: Callable[[Row], None],
    *,
    worker: Worker = process_job,
    initializer: Initializer = init_worker,
) -> None:
    """Run every job; call `on_row` in this process for each row, in completion order.

    `worker` and `initializer` are the seam tests fake; they must be picklable
    (module-level functions), as the children are started with `spawn`.
    """
    # spawn, not fork: children import and load everything themselves, so no
    # MediaPipe graph or thread pool of the parent is ever copied half-alive.
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers, mp_context=context, initializer=initializer, initargs=(settings,)
        )

    pending = deque(jobs)
    suspects: deque[Job] = deque()  # in flight when a worker died; rerun one at a time
    window = 2 * workers  # enough queued that no worker waits; few lost when one dies
    in_flight: dict[Future[Row], Job] = {}
    pool = new_pool()
    with interrupt_flag() as interrupted:
        try:
            while pending or suspects or in_flight:
                if interrupted.is_set():  # Ctrl-C: finish what is in flight, start nothing
                    pending.clear()
                    suspects.clear()
                    if not in_flight:
                        break
                if suspects:
                    if not in_flight:
                        job = suspects.popleft()
                        in_flight[pool.submit(worker, job)] = job
                else:
                    while pending and len(in_flight) < window:
                        job = pending.popleft()
                        in_flight[pool.submit(worker, job)] = job

                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if not any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    for future in done:
                        del in_flight[future]
                        on_row(future.result())
                    continue

                # A worker died and took the pool with it: every unfinished job is lost.
                wait(in_flight)
                lost = []
                for future, job in in_flight.items():
                    if isinstance(future.exception(), BrokenProcessPool):
                        lost.append(job)
                    else:
                        on_row(future.result())
                in_flight.clear()
                pool.shutdown()
                if len(lost) == 1:
                    message = "the worker process died on this file"
                    on_row(failed_row(lost[0], "worker.crashed", message))
                else:
                    suspects.extend(lost)
                pool = new_pool()
        finally:
            pool.shutdown(cancel_futures=True)
    if interrupted.is_set():
        raise KeyboardInterrupt


@contextmanager
def interrupt_flag() -> Iterator[threading.Event]:
    """An event the first SIGINT sets while inside (a second one raises
    KeyboardInterrupt as usual); the previous handler is restored on exit. Off the
    main thread, where Python delivers no signal, nothing is installed."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
