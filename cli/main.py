"""`avatar-prep`: one console script, subcommands registered by the modules
that own them. Exit codes: 0 success/accepted, 1 rejected/failed, 2 bad usage."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cli import pipeline_cmds, service_cmds, webhook_cmds
from cli.native_logs import silence_native_stderr
from pipeline.version import package_version

# The commands that run the face models in this process: their native start-up
# lines are hidden unless --verbose.
MODEL_COMMANDS = frozenset({"prepare", "batch", "eval", "serve", "worker"})


class Parser(argparse.ArgumentParser):
    """argparse that suggests the closest command or option for a typo, and shows a
    command's description (its module docstring) as written, line breaks kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        hint = self._suggestion(message)
        super().error(f"{message}{hint}")

    def _suggestion(self, message: str) -> str:
        if "invalid choice: '" in message:
            typed = message.split("invalid choice: '", 1)[1].split("'", 1)[0]
            known = [c for a in self._actions if a.choices for c in a.choices]
        elif message.startswith("unrecognized arguments: "):
            typed = message.removeprefix("unrecognized arguments: ").split()[0]
            known = [o for p in _parsers(self) for a in p._actions for o in a.option_strings]
        else:
            return ""
        close = difflib.get_close_matches(typed, known, n=1, cutoff=0.6)
        return f" (did you mean '{close[0]}'?)" if close else ""


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every subcommand parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="avatar-prep",
        description="Prepare face photos for talking avatars: check, align, crop, store.",
    )
    parser.add_argument("--version", action="version", version=f"avatar-prep {package_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    pipeline_cmds.register(sub)
    service_cmds.register(sub)
    webhook_cmds.register(sub)
    for name in MODEL_COMMANDS:
        sub.choices[name].add_argument(
            "--verbose",
            action="store_true",
            help="also show the face models' own start-up and diagnostic lines",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in MODEL_COMMANDS and not args.verbose:
        # Only as the program itself: a test calling main() keeps its own stderr.
        silence_native_stderr()
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
