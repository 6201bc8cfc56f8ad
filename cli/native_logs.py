"""Keep the face models' native start-up lines off the terminal.

MediaPipe's C++ (TFLite's "Created TensorFlow Lite XNNPACK delegate", absl's
"W0000 ... inference_feedback_manager" warnings) writes straight to file
descriptor 2, below Python, so no logging setting reaches it. Unless the user
asks for them (`--verbose`), fd 2 is pointed at /dev/null and Python's own
`sys.stderr` (our messages, the progress bar) keeps writing to the terminal
through a duplicate of the original descriptor. Child processes forked later
inherit both, so batch workers are quiet too.
"""

from __future__ import annotations

import os
import sys


def silence_native_stderr() -> None:
    """Send what native code writes to fd 2 to /dev/null; keep `sys.stderr` on the
    original stderr. Call once, early, before the models load."""
    sys.stderr.flush()
    kept = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(
        kept, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
    )
