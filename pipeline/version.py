"""The installed package's version: what records, the OpenAPI document and
`avatar-prep --version` name as the build (`reprocess --before-version` compares it)."""

from __future__ import annotations

import importlib.metadata
from functools import cache


@cache
def package_version() -> str:
    """`avatar-prep`'s version, or "0.0.0" in a source tree that was never installed."""
    try:
        return importlib.metadata.version("avatar-prep")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
