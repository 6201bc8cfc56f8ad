"""The sample photos (see README.md here), installed with the project as package
data, so the commands that use them find them wherever it is installed (the
package is installed unzipped, so the folder is a real one)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

SAMPLES: Final = Path(str(files(__name__)))

# The photos the benchmarks send, by size: a 1.4 MP portrait and a 12 MP photo.
BENCH_PHOTOS: Final = {"1mp": "accept_portrait.jpg", "12mp": "large_12mp.jpg"}
