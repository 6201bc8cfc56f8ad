"""The result types of one pipeline run. All coordinates are (x, y) pixels in
the upright source image (after EXIF orientation), origin top-left."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x, y, width, height
Matrix = tuple[tuple[float, float, float], tuple[float, float, float]]  # 2x3 affine


@dataclass(frozen=True)
class Check:
    """One measured rule: `value` against `limit`, and what a person can do if it failed.

    `code` is the stable code the check reports when it fails; `severity` is
    "reject" (the image is refused with that code), "warn" (accepted, with a
    warning of that code) or "" (passed). `bound` says which side of the limit
    is allowed: "min" (value at least limit), "max" (at most), "" (a count or
    a measure without direction). `message` is the sentence for people when
    it failed, else ""."""

    name: str
    passed: bool
    value: float | int | str | None
    limit: float | int | str | None
    hint: str
    code: str = ""
    severity: str = ""
    bound: str = ""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "limit": self.limit,
            "bound": self.bound or None,
            "code": self.code or None,
            "severity": self.severity or None,
            "hint": self.hint,
        }

    def to_warning(self) -> dict[str, Any]:
        """The record of a check that failed without rejecting: what to show a person
        (`message`, `hint`) and what a program switches on (`code`, `value`, `limit`,
        `bound`)."""
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "bound": self.bound or None,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class SourceInfo:
    """What the bytes are: `width`/`height` are the upright size."""

    sha256: str
    format: str  # jpeg, png, webp, gif, bmp, tiff, heic, avif
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class FaceInfo:
    """The chosen face. `landmarks` keys: left_eye, right_eye, nose, mouth_left,
    mouth_right; `left_*` is the one on the image's left (the subject's right)."""

    box: Box
    score: float
    landmarks: dict[str, Point]
    pose: dict[str, float]  # yaw, pitch, roll in degrees; yaw > 0 turns to image right
    quality: dict[str, float]  # sharpness, brightness

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": {k: [round(v[0], 1), round(v[1], 1)] for k, v in self.landmarks.items()},
            "pose": {k: round(v, 1) for k, v in self.pose.items()},
            "quality": {k: round(v, 2) for k, v in self.quality.items()},
        }


@dataclass(frozen=True)
class Rendition:
    """One encoded crop. `transform` maps upright source (x, y, 1) to output pixels."""

    aspect_ratio: str
    width: int
    height: int
    transform: Matrix
    filled_ratio: float  # share of output pixels that lay outside the source and were filled
    content_type: str
    data: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "content_type": self.content_type,
            "transform": [[round(v, 6) for v in row] for row in self.transform],
            "filled_ratio": round(self.filled_ratio, 4),
        }


@dataclass(frozen=True)
class Prepared:
    """An accepted image: the face, every check (all passed or only warned), the renditions."""

    source: SourceInfo
    face: FaceInfo
    checks: tuple[Check, ...]
    renditions: dict[str, Rendition]
    versions: dict[str, str]
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def warnings(self) -> tuple[Check, ...]:
        """The checks that failed without rejecting (severity "warn")."""
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (no image bytes)."""
        return {
            "verdict": "accept",
            "source": asdict(self.source),
            "face": self.face.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "warnings": [c.to_warning() for c in self.warnings],
            "images": {k: r.to_dict() for k, r in self.renditions.items()},
            "versions": self.versions,
        }
