"""The pipeline's subcommands: prepare, batch, bench (and eval, owned by cli/eval_cmd.py)."""

from __future__ import annotations

from typing import Any

from cli import batch, bench, eval_cmd, prepare_cmd


def register(sub: Any) -> None:
    prepare_cmd.register(sub)
    batch.register(sub)
    eval_cmd.register(sub)
    bench.register(sub)
