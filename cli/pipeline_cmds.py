"""prepare, batch, bench. OWNER: cli helper."""

from __future__ import annotations

from typing import Any

from cli import eval_cmd


def register(sub: Any) -> None:
    eval_cmd.register(sub)
