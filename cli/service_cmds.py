"""serve, worker, keys, db. OWNER: service helper."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    del sub
