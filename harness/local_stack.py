"""Run the service's processes on this machine as children: the API (`avatar-prep
serve`) and a Celery worker (`avatar-prep worker`), each configured only through
AVATAR_PREP_* environment variables made from one `Settings`.

Used by `avatar-prep bench-api --start` and the integration tests, so both run
exactly the commands a deployment runs. Each child gets its own process group:
stopping one stops the worker's pool and beat processes with it, and nothing
else.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import BaseModel, SecretStr

from service.settings import Settings

AVATAR_PREP = Path(sys.executable).parent / "avatar-prep"
ENV_PREFIX = "AVATAR_PREP_"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables that rebuild it in a child process:
    the current environment without any AVATAR_PREP_* variable, plus one per field
    (nested models as JSON, secrets in clear: the child needs them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"{ENV_PREFIX}{name.upper()}"] = text
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Child:
    """One `avatar-prep` command running in its own process group, its output
    (stdout and stderr) appended to `log_path`. `netns`: run it in that network
    namespace (`ip netns exec`, which execs the command: the pid is the command's)."""

    def __init__(
        self, args: list[str], settings: Settings, log_path: Path, netns: str | None = None
    ) -> None:
        self.args = args
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        prefix = ["ip", "netns", "exec", netns] if netns is not None else []
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*prefix, str(AVATAR_PREP), *args],
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def says(self, words: str, timeout: float) -> bool:
        """Whether the log comes to contain `words` within `timeout` seconds (what a
        process logs after the effect a caller saw, it may not have written yet)."""
        deadline = time.monotonic() + timeout
        while words not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def children(self) -> list[int]:
        """Pids of this process's direct children (a worker's pool processes and
        its embedded beat)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        """SIGTERM to the main process (a worker finishes its running tasks and
        stops its own pool; a SIGTERM to the whole group would kill the pool
        processes and make it start new ones while shutting down), SIGKILL to
        the group if it is not gone in STOP_TIMEOUT_SECONDS."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Whatever of the group outlived its main process (a pool process of a
        # worker that was killed) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def fail(self, what: str) -> RuntimeError:
        tail = "\n".join(self.log().splitlines()[-40:])
        return RuntimeError(f"{what}: avatar-prep {' '.join(self.args)}\n--- log tail ---\n{tail}")


def ended(pid: int) -> bool:
    """Whether `pid` has exited (gone, or a zombie nobody has reaped yet): for the
    pool processes of a worker that was killed (`Child.children()` read before)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def run(settings: Settings, *args: str) -> str:
    """Run one `avatar-prep` command to completion; its stdout. Raises
    CalledProcessError (with the output) when it fails."""
    done = subprocess.run(
        [str(AVATAR_PREP), *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, done.args, output=done.stdout, stderr=done.stderr
        )
    return done.stdout


def create_key(settings: Settings, account: str, plan: str) -> str:
    """A new plain API key for `account` (made if new), via `avatar-prep keys create`."""
    out = run(settings, "keys", "create", "--account", account, "--plan", plan)
    match = re.search(r"^api key:\s*(\S+)", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no key in the output of keys create:\n{out}")
    return match.group(1)


def start_api(settings: Settings, log_path: Path, port: int | None = None) -> tuple[Child, str]:
    """`avatar-prep serve` on 127.0.0.1; returns it and its base URL once
    `/healthz` answers (the process is up; `/readyz` may still say a dependency
    is down, which fault tests want)."""
    port = port or free_port()
    api = Child(["serve", "--host", "127.0.0.1", "--port", str(port)], settings, log_path)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if not api.running():
            raise api.fail("the API exited while starting")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return api, base_url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            api.stop()
            raise api.fail("the API did not answer /healthz")
        time.sleep(0.1)


def start_worker(
    settings: Settings,
    log_path: Path,
    *,
    concurrency: int,
    beat: bool,
    netns: str | None = None,
) -> Child:
    """`avatar-prep worker` (in network namespace `netns` when given); returns once
    Celery logs that it is ready (connected to the broker, pool started; each pool
    process then loads its models)."""
    args = ["worker", f"--concurrency={concurrency}", "--beat" if beat else "--no-beat"]
    offset = log_path.stat().st_size if log_path.exists() else 0
    worker = Child(args, settings, log_path, netns)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if not worker.running():
            raise worker.fail("the worker exited while starting")
        if re.search(rb"\S+@\S+ ready\.", log_path.read_bytes()[offset:]):
            return worker
        if time.monotonic() > deadline:
            worker.stop()
            raise worker.fail("the worker did not become ready")
        time.sleep(0.1)
