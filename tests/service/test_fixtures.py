"""The fixtures for real components (tests/services.py): a missing service is a
skip on a laptop and a failure on CI. Run in a child pytest against ports where
nothing listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD_TESTS = """
def test_postgres(postgres_url):
    pass

def test_redis(redis_url):
    pass
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


def run_child(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_child.py"
    test.write_text(CHILD_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(
        PYTHONPATH=str(ROOT),
        AVATAR_PREP_TEST_POSTGRES_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x",
        AVATAR_PREP_TEST_REDIS_URL=f"redis://127.0.0.1:{closed_port()}",
    )
    if ci:
        env["CI"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.services", str(test)]
    return subprocess.run(
        [*command, "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_a_missing_service_is_skipped_off_ci(tmp_path: Path) -> None:
    result = run_child(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout


@pytest.mark.slow
def test_a_missing_service_fails_on_ci(tmp_path: Path) -> None:
    result = run_child(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout
    assert "2 errors" in result.stdout
    assert "PostgreSQL is not available" in result.stdout
    assert "Redis is not available" in result.stdout
