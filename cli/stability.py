"""`avatar-prep eval DIR --labels CSV --stability`: do the verdicts hold when a
photo changes in ways that should not change them?

Each labelled photo is run again mirrored, at three quarters of its size, with
3% cut from every side, re-saved as a quality-95 JPEG, a fifth of a stop
brighter, and as uploads from phones and old albums differ: the camera tilted
15 degrees, sepia-toned, and with a low-light sensor's grain. None of these
changes who is in the photo, how they face the camera or what the photo is, so
a verdict that changes is one whose measure sits at a limit's edge: such a
limit goes either way on photos nobody tuned for, which the accuracy on the
labelled rows cannot show. (A smaller copy may rightly
fall below the resolution limit: `face.too_small` at 75% is reported with
the rest, and is no knife-edge when the photo was only just large enough.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from cli.degrade import exposed, jpeg, png
from pipeline import FaceModels, ImageError, PipelineSettings, Rejected, prepare
from pipeline.decode import decode
from pipeline.probe import probe

SMALLER = 0.75
CROPPED = 0.03
BRIGHTER = 2 ** (1 / 5)  # linear light, +0.2 EV
RESAVED_QUALITY = 95
TILT_DEGREES = 15.0  # counter-clockwise, about the centre; the corners grey
# The classic sepia toning matrix (RGB rows): a warm monochrome print.
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
GRAIN_SIGMA = 8.0  # of 0-255, per channel and pixel: a phone's high-ISO noise
GRAIN_SEED = 20261207
GRAIN_QUALITY = 90


def _mirrored(rgb: np.ndarray) -> bytes:
    return png(np.ascontiguousarray(rgb[:, ::-1]))


def _smaller(rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    size = (max(1, round(width * SMALLER)), max(1, round(height * SMALLER)))
    return png(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def _cropped(rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    dy, dx = round(height * CROPPED), round(width * CROPPED)
    return png(rgb[dy : height - dy, dx : width - dx])


def _resaved(rgb: np.ndarray) -> bytes:
    return jpeg(rgb, RESAVED_QUALITY)


def _brighter(rgb: np.ndarray) -> bytes:
    return png(exposed(rgb, BRIGHTER))


def _tilted(rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), TILT_DEGREES, 1.0)
    return png(
        cv2.warpAffine(
            rgb, turn, (width, height), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128)
        )
    )


def _sepia(rgb: np.ndarray) -> bytes:
    toned = rgb.astype(np.float32) @ SEPIA.T.astype(np.float32)
    return png(np.clip(toned, 0, 255).round().astype(np.uint8))


def _grainy(rgb: np.ndarray) -> bytes:
    noise = np.random.default_rng(GRAIN_SEED).normal(0.0, GRAIN_SIGMA, rgb.shape)
    return jpeg(np.clip(rgb + noise, 0, 255).round().astype(np.uint8), GRAIN_QUALITY)


# Each a pure function of the photo's upright (H, W, 3) uint8 RGB pixels,
# returning the file a user would upload.
VARIANTS: dict[str, Callable[[np.ndarray], bytes]] = {
    "mirrored": _mirrored,
    "75% size": _smaller,
    "3% cropped": _cropped,
    "re-saved": _resaved,
    "+0.2 EV": _brighter,
    "tilted 15°": _tilted,
    "sepia": _sepia,
    "grain": _grainy,
}


@dataclass(frozen=True)
class Variation:
    """One variant of one photo: its verdict `code` ("" when accepted) and the
    photo's own (`base`)."""

    file: str
    variant: str
    code: str
    base: str

    @property
    def flipped(self) -> bool:
        """Accepted one way and rejected the other."""
        return (self.code == "") != (self.base == "")

    @property
    def changed(self) -> bool:
        return self.code != self.base


def stability(
    photos: dict[str, tuple[bytes, str]], models: FaceModels, settings: PipelineSettings
) -> list[Variation]:
    """Every variant of every photo in `photos` (name -> (bytes, its own verdict
    code, "" when accepted)). A file that cannot be decoded has no variants."""
    out = []
    for name, (data, base) in photos.items():
        try:
            rgb = decode(data, probe(data, settings)).rgb
        except ImageError:
            continue
        for variant, apply in VARIANTS.items():
            out.append(Variation(name, variant, verdict_code(apply(rgb), models, settings), base))
    return out


def verdict_code(data: bytes, models: FaceModels, settings: PipelineSettings) -> str:
    """The code `prepare` rejects `data` with, "" when it accepts it."""
    try:
        prepare(data, models, settings)
    except (Rejected, ImageError) as verdict:
        return verdict.code
    return ""


def format_stability(variations: list[Variation]) -> str:
    """Per variant, how many verdicts turned between accept and reject and how
    many rejections changed their code; how many photos held under every
    variant; and every change."""
    photos = sorted({v.file for v in variations})
    lines = [f"stability ({len(photos)} photos, each varied in ways that should not matter):", ""]
    for variant in VARIANTS:
        of = [v for v in variations if v.variant == variant]
        counts = Counter("flipped" if v.flipped else "code" if v.changed else "same" for v in of)
        lines.append(
            f"  {variant:11} accept <-> reject {counts['flipped']:3}   "
            f"other rejection code {counts['code']:3}   same {counts['same']:3}"
        )
    flipped = {v.file for v in variations if v.flipped}
    changed = {v.file for v in variations if v.changed}
    lines += [
        "",
        f"accept/reject held under every variant: {len(photos) - len(flipped)} of {len(photos)}; "
        f"the code too: {len(photos) - len(changed)} of {len(photos)}",
    ]
    for v in variations:
        if v.changed:
            lines.append(
                f"  {v.file} {v.variant}: {v.base or 'accept'} -> {v.code or 'accept'}"
                + ("  (accept/reject)" if v.flipped else "")
            )
    return "\n".join(lines)
