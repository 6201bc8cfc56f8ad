"""The one exception tree of avatar-prep, rooted here because the pipeline is
the innermost layer; the service adds its own branches under `AvatarPrepError`.

Every error has a stable `code` (the ones in docs/api.md) that clients switch
on, a `message` for people that names what was wrong and what is allowed, and
for image and face verdicts the `checks` that were measured. Entry points (HTTP,
task, command line) map the tree to their outcome in one place each.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pipeline.record import Check, FaceInfo, SourceInfo


class AvatarPrepError(Exception):
    """Root of every expected failure. `param` names the offending input field."""

    code: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        checks: tuple[Check, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.checks = checks

    def to_dict(self) -> dict[str, Any]:
        """The inner object of the error envelope (without type and request id)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message, "param": self.param}
        if self.checks:
            out["checks"] = [c.to_dict() for c in self.checks]
        return out


class ImageError(AvatarPrepError):
    """The bytes are not a usable image (size, format, corruption): `image.*` codes.
    Raised before any face work; cheap to detect at the edge."""

    def to_record(self) -> dict[str, Any]:
        """The JSON record of a rejection, with the same keys as `Rejected.to_record`;
        nothing about the source is known beyond the error."""
        return {
            "verdict": "reject",
            "error": self.to_dict(),
            "source": None,
            "face": None,
            "candidates": [],
            "checks": [c.to_dict() for c in self.checks],
        }


class Rejected(AvatarPrepError):
    """The image decoded but breaks a face or image rule (`face.*`, `image.not_a_photo`).
    Carries what was measured so the caller can show it."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        checks: tuple[Check, ...],
        source: SourceInfo | None = None,
        face: FaceInfo | None = None,
        candidates: tuple[tuple[float, float, float, float], ...] = (),
    ) -> None:
        super().__init__(message, code=code, param="image", checks=checks)
        self.source = source
        self.face = face
        self.candidates = candidates

    def to_record(self) -> dict[str, Any]:
        """The JSON record of a rejection, the counterpart of `Prepared.to_dict`."""
        return {
            "verdict": "reject",
            "error": self.to_dict(),
            "source": asdict(self.source) if self.source else None,
            "face": self.face.to_dict() if self.face else None,
            "candidates": [[round(v, 1) for v in b] for b in self.candidates],
            "checks": [c.to_dict() for c in self.checks],
        }
