"""The command line starts without the face models: `avatar-prep --help` and the
service's commands never load MediaPipe (about 1.5 s), only commands that
process photos do."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_command_line_does_not_import_mediapipe() -> None:
    probe = "import sys, cli.main; print('mediapipe' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
