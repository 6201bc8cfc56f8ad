"""`avatar-prep`: one console script, subcommands registered by the modules
that own them. Exit codes: 0 success/accepted, 1 rejected/failed, 2 bad usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import pipeline_cmds, service_cmds, webhook_cmds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatar-prep",
        description="Prepare face photos for talking avatars: check, align, crop, store.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pipeline_cmds.register(sub)
    service_cmds.register(sub)
    webhook_cmds.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
