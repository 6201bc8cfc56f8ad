"""The command line as a person meets it: quiet by default, a version, help in
plain words, and a suggestion for a typo."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import build_parser, main

AVATAR_PREP = str(Path(sys.executable).with_name("avatar-prep"))
PORTRAIT = Path(__file__).resolve().parents[2] / "sample_images" / "accept_portrait.jpg"
# What MediaPipe's native code prints at start-up (TFLite, absl).
NATIVE_LINES = ("XNNPACK", "inference_feedback_manager", "absl::InitializeLog")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AVATAR_PREP, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_models_start_quietly_unless_asked(tmp_path: Path) -> None:
    quiet = run("prepare", str(PORTRAIT), "-o", str(tmp_path / "a"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("accept: one face")
    assert not any(line in quiet.stderr for line in NATIVE_LINES), quiet.stderr

    verbose = run("prepare", str(PORTRAIT), "-o", str(tmp_path / "b"), "--verbose")
    assert verbose.returncode == 0
    assert any(line in verbose.stderr for line in NATIVE_LINES), verbose.stderr


def test_errors_still_reach_the_terminal_when_quiet(tmp_path: Path) -> None:
    missing = run("prepare", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("avatar-prep ")


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["prepar", "x.jpg"], "did you mean 'prepare'?"),
        (["bench-apy"], "did you mean 'bench-api'?"),
        (["prepare", "x.jpg", "--overlya"], "did you mean '--overlay'?"),
    ],
)
def test_a_typo_gets_the_closest_match(
    argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert suggestion in capsys.readouterr().err


def test_an_empty_folder_is_said_to_be_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / ".DS_Store").write_bytes(b"x")
    assert main(["batch", str(tmp_path / "photos"), "-o", str(tmp_path / "out")]) == 2
    assert "has no files to prepare" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def commands(parser: argparse.ArgumentParser, name: str = "") -> Iterator[tuple[str, Any]]:
    """Every (sub)command parser under `parser`, with its full name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                full = f"{name} {child_name}".strip()
                yield full, child
                yield from commands(child, full)


def test_every_command_and_option_has_help_without_module_names() -> None:
    for name, command in commands(build_parser()):
        text = command.format_help()
        assert not any(f"{pkg}/" in text for pkg in ("cli", "pipeline", "service", "api")), name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
