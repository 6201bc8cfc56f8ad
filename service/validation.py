"""Validation without an avatar: the whole pipeline on one image, in this process,
and nothing stored (no row, no object), for a sign-up form that asks "is this
photo usable?" before anything exists.

The API process loads the face models on its first validation (about 150 MB,
once per process). MediaPipe's graphs are not safe to share between threads,
so validations run one at a time per process; a request that cannot start
within `validate_wait_seconds` gets `503 at_capacity` with Retry-After, and
the rate limit of its key applies as to any request.
"""

from __future__ import annotations

import threading
from typing import Any

from pipeline import FaceModels, Rejected, prepare
from service.avatars import ImageInput
from service.errors import Unavailable
from service.fetch import fetch
from service.public import error_object
from service.settings import Settings


class Validator:
    """Made once per API process; `validate` may be called from any thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._models: FaceModels | None = None
        self._turn = threading.Lock()

    def validate(self, image: ImageInput) -> dict[str, Any]:
        """The record of `image` (`Prepared.to_dict()` or `Rejected.to_record()`,
        the renditions described but not encoded into storage): `verdict`, `error`
        (null when accepted), `checks`, `warnings`, `source`, `face`, `candidates`
        (rejections) and `images` (accepts: each rendition's size, transform and
        filled_ratio). A URL is fetched first under the same rules as uploads.
        Raises ImageError when the bytes are no usable image (as upload's cheap
        checks do) and Unavailable when the process is busy past the wait."""
        data = image.data if image.url is None else fetch(image.url, self._settings)
        if not self._turn.acquire(timeout=self._settings.validate_wait_seconds):
            raise Unavailable(
                "This server is validating other photos; retry shortly.",
                retry_after=max(1, round(self._settings.validate_wait_seconds)),
            )
        try:
            if self._models is None:
                self._models = FaceModels.load()
            try:
                record = prepare(data or b"", self._models, self._settings.pipeline).to_dict()
            except Rejected as rejected:
                return {
                    **rejected.to_record(),
                    "error": error_object(rejected),
                    "warnings": [],
                    "images": None,
                }
        finally:
            self._turn.release()
        return {**record, "error": None, "candidates": []}

    def close(self) -> None:
        if self._models is not None:
            self._models.close()
