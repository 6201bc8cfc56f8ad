"""`avatar-prep eval DIR --labels CSV [--json]`. OWNER: face helper."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    del sub
