"""The renditions an avatar has: their aspect ratios, once for every layer.

`AspectRatio` lists the framings every accepted avatar is rendered in, in the
order the pipeline makes them (iterate the enum); `DEFAULT_ASPECT_RATIO` is the
one a session uses when it names none (the image the avatar renderer animates).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class AspectRatio(StrEnum):
    """Width:height of a rendition, as the API and the record write it."""

    SQUARE = "1:1"
    LANDSCAPE = "4:3"
    PORTRAIT = "3:4"

    @property
    def slug(self) -> str:
        """`1x1`, `4x3`, `3x4`: the name in file names and storage keys, where a `:`
        is awkward (URLs, paths)."""
        return self.value.replace(":", "x")


DEFAULT_ASPECT_RATIO: Final = AspectRatio.LANDSCAPE
