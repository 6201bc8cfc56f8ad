"""Public identifiers: a short type prefix, `_`, and a 26-character ULID.

ULIDs sort by creation time (millisecond resolution, monotonic within one
process), so ordering by id is ordering by age.
"""

from __future__ import annotations

import re
from typing import Literal

from ulid import ULID

Prefix = Literal["avat", "sess", "req", "acct", "key", "whep", "evt", "dlv", "wrk"]

# Crockford base32 without I, L, O, U; the first character is at most 7 (128 bits).
_ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}"
_AVATAR_ID = re.compile(rf"avat_{_ULID}")


def new_id(prefix: Prefix) -> str:
    """A fresh id such as `avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX`."""
    return f"{prefix}_{ULID()}"


def is_avatar_id(value: str) -> bool:
    """Whether `value` has the exact form of an avatar id (not whether it exists)."""
    return _AVATAR_ID.fullmatch(value) is not None
