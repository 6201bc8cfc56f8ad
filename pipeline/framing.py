"""The renditions an avatar has: their names, once for every layer.

`ASPECT_RATIOS` lists the framings every accepted avatar is rendered in, in
the order the pipeline makes them; `DEFAULT_ASPECT_RATIO` is the one a session
uses when it names none (the image the avatar renderer animates).
"""

from __future__ import annotations

from typing import Final

ASPECT_RATIOS: Final = ("1:1", "4:3", "3:4")
DEFAULT_ASPECT_RATIO: Final = "4:3"
