"""A worker's children end with it: its pool processes and its embedded beat.

Celery stops them on a clean shutdown, but a main worker process killed with
SIGKILL (or by the OOM killer) cannot: its embedded beat went on sweeping as an
orphan, and a pool process could go on working for a worker that no longer
acknowledges anything. Each child therefore watches its parent from a daemon
thread and exits once it is gone (its parent pid changes when it is re-parented).
What a pool process held is then sent again by the sweeper of a live worker,
once its heartbeat is older than `worker_lost_after_seconds` (service/heartbeats.py).
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

# How often a child looks at its parent pid: a lost parent is noticed within this,
# at the cost of one getppid() call.
PARENT_POLL_SECONDS = 0.5
# The exit status of a child that ended because its worker was gone.
ORPHAN_EXIT_STATUS = 3


def exit_with_parent(what: str) -> None:
    """From now on, end this process (os._exit: no clean-up that could hang) within
    PARENT_POLL_SECONDS of its parent's death. `what` names it in the log line."""
    parent = os.getppid()

    def watch() -> None:
        stopped = threading.Event()
        while not stopped.wait(PARENT_POLL_SECONDS):
            if os.getppid() != parent:
                logger.warning("%s %d: its worker %d is gone; exiting", what, os.getpid(), parent)
                os._exit(ORPHAN_EXIT_STATUS)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
