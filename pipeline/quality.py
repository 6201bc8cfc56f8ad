"""How the face looks: sharpness, brightness, and whether it is drawn.

All three are measured on the aligned 1:1 crop (the avatar itself), reduced to
a fixed `QUALITY_SIDE`, inside the inner-face region. A fixed framing and size
make the numbers independent of the photo's resolution and of
`output_size`, and they describe what the user will actually get.

`relative_sharpness` compares two faces of one photo, to tell a second person
from a heavily blurred face in the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.landmarks import LEFT_EYE, MESH_ROI_SCALE, RIGHT_EYE, Face, face_patch

QUALITY_SIDE = 256
# Inner face in the FFHQ square (fractions of its side): eyes sit near y 0.47,
# the mouth near 0.72, the cheeks near x 0.3 and 0.7. Hair, background and the
# reflected fill of a face near the border stay mostly outside.
INNER_ROWS = (0.30, 0.80)
INNER_COLS = (0.30, 0.70)

# Sobel gradient magnitudes (of 0-255 luma) that count as a flat fill and as a
# hard drawn line. Skin in a photo, even retouched or blurred, has gentle
# gradients almost everywhere; cel shading is flat with ink lines between.
FLAT_GRADIENT = 4.0
LINE_GRADIENT = 150.0
# Luma spread (2nd to 98th percentile) of the inner face below which its
# gradients are scaled up for the drawn share: faces in normal light span
# 100-225, a face at 12% exposure about 20.
NORMAL_CONTRAST = 128.0

# The face's brightness is where its lit parts sit, not its mean: a camera's
# auto exposure puts them at 200-240 whatever the skin tone (dark skin in good
# light: mean 97, 98th percentile 162), so a low value means too little light,
# not dark skin. The top 2% are left out for glints on eyes, teeth, glasses.
BRIGHT_PERCENTILE = 98
# Very dark skin's lit parts sit lower still (faces2 e2064 in daylight: 145,
# so one stop under reads dim where a light face does not). The whites of open
# eyes are lit as the skin is but are white whatever its tone: where they are
# brighter than the skin's lit parts, they are the face's brightness. Read as
# the 90th percentile inside each of Face Mesh's eye contours (past the iris,
# lashes and lids; a catchlight is less than a tenth of the eye), from at
# least MIN_EYE_PIXELS pixels, and the dimmer eye counts: a reflection on one
# lens of a pair of glasses does not light the face. Closed eyes read their
# lids, skin no brighter than the skin's lit parts, and so change nothing.
EYE_WHITES_PERCENTILE = 90
MIN_EYE_PIXELS = 20

# The level (0-255) at which a pixel's luma, or one of its colour channels, has
# run out at white (the sensor or the camera's tone curve clipped it), and the
# luma at which it is crushed to black.
BLOWN_LEVEL = 250
BLACK_LUMA = 5
# Colour channels run out one by one: on skin, red and then green clip well
# before blue, and where two have, the pixel has lost its colour (a flat
# yellow-white) and its detail. Counting only pixels whose luma is clipped (all
# three) misses a warm-lit face washed out that way.
BLOWN_CHANNELS = 2

# The discrete second derivative along a row (its transpose: down a column).
SECOND_DERIVATIVE = np.array([[1.0, -2.0, 1.0]], dtype=np.float32)

# Largest patch side at which two faces' sharpness is compared.
COMPARE_SIDE = 128


@dataclass(frozen=True)
class FaceQuality:
    """`sharpness`: twice the smaller of the variances of the inner face's
    second derivatives across and down (the Laplacian's two halves), so blur in
    any one direction (camera shake) lowers it as much as blur in all (higher
    is sharper; a motion-blurred face reads 2-5, a studio portrait 200+), read
    as if a face dimmer than `measure`'s `dim` were lit to it (see there).
    `brightness`: how bright its lit parts are, the 98th percentile of its luma,
    or the whites of its eyes where brighter (0-255; see `BRIGHT_PERCENTILE`).
    `drawn_share`: the share of its pixels that are flat fill or hard line
    (0-1; photos read up to 0.23, drawings 0.45+).
    `blown_share`: the share blown out, with at least BLOWN_CHANNELS of its
    colour channels at BLOWN_LEVEL or more (0-1)."""

    sharpness: float
    brightness: float
    drawn_share: float
    blown_share: float

    def to_dict(self) -> dict[str, float]:
        """The `face.quality` of the record (the drawn share is reported by its check)."""
        return {
            "sharpness": self.sharpness,
            "brightness": self.brightness,
            "blown_share": self.blown_share,
        }


@dataclass(frozen=True)
class FacePixels:
    """What every measure of the face reads (here and `pipeline.occlusion`):
    the aligned 1:1 crop reduced to (QUALITY_SIDE, QUALITY_SIDE), as `rgb`
    ((S, S, 3) uint8 RGB) and its `luma` ((S, S) float32, 0-255)."""

    rgb: np.ndarray
    luma: np.ndarray


def face_pixels(square: np.ndarray) -> FacePixels:
    """The `FacePixels` of the aligned 1:1 crop `square` ((S, S, 3) uint8 RGB, any S)."""
    small = cv2.resize(square, (QUALITY_SIDE, QUALITY_SIDE), interpolation=cv2.INTER_AREA)
    return FacePixels(small, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32))


def eye_whites(luma: np.ndarray, points: np.ndarray) -> float:
    """How bright the whites of the eyes are: the EYE_WHITES_PERCENTILE of
    `luma` (a `FacePixels.luma`) inside each eye contour of the (468, 2) Face
    Mesh `points` (x, y, in `luma`'s pixels), the dimmer eye's; 0.0 where
    either contour holds fewer than MIN_EYE_PIXELS pixels."""
    points = np.asarray(points, dtype=np.float64)
    readings = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        mask = np.zeros(luma.shape, dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(points[list(eye)]).astype(np.int32)], (1,))
        inside = luma[mask > 0]
        if inside.size < MIN_EYE_PIXELS:
            return 0.0
        readings.append(float(np.percentile(inside, EYE_WHITES_PERCENTILE)))
    return min(readings)


def measure(face: FacePixels, dim: float, whites: float) -> FaceQuality:
    """Measure the face from its `face_pixels` and its `eye_whites` (`whites`;
    0.0 for none read).

    `dim`: a brightness (0-255) under which the face's sharpness is read as if
    its light were raised to `dim`. Less light scales the luma and so its
    second derivatives (a gain in linear light is one in sRGB, whose curve is
    near a power law), and their variance with its square: one stop under
    halves the reading of a face that is as sharp as before. Read unlifted, a
    sharp photo taken in poor light (2.7 stops under an accepted photo, the
    graded set) reads as blurred and is rejected `face.too_blurry`, a hint to
    hold the camera still where the fault is the light; lifted to the
    dim-warning level it is told it is dark, while a blur that rejects in good
    light still rejects there (lifting only to `dim`, half a normal exposure's
    brightness, keeps a dim face's reading under what the face would read lit).
    """
    luma = face.luma
    rows = slice(round(INNER_ROWS[0] * QUALITY_SIDE), round(INNER_ROWS[1] * QUALITY_SIDE))
    cols = slice(round(INNER_COLS[0] * QUALITY_SIDE), round(INNER_COLS[1] * QUALITY_SIDE))
    # Filters run on the whole crop so the region's border pixels see real
    # neighbours, then only the inner face is counted.
    dx = cv2.Sobel(luma, cv2.CV_32F, 1, 0)[rows, cols]
    dy = cv2.Sobel(luma, cv2.CV_32F, 0, 1)[rows, cols]
    gradient = np.hypot(dx, dy)
    # A dark or hazy face has weak gradients everywhere and would look flat:
    # lift its contrast (2nd to 98th percentile of luma) to that of a face in
    # normal light first. Normal contrast is left as it is.
    low, high = np.percentile(luma[rows, cols], (2, 98))
    contrast = max(1.0, NORMAL_CONTRAST / max(float(high - low), 1.0))
    drawn = (gradient * contrast < FLAT_GRADIENT) | (gradient * contrast > LINE_GRADIENT)
    # Pixels clipped to white or black are flat because the sensor ran out,
    # not because a brush made them so: overexposure is its own check.
    clipped = (luma[rows, cols] >= BLOWN_LEVEL) | (luma[rows, cols] <= BLACK_LUMA)
    blown = np.count_nonzero(face.rgb[rows, cols] >= BLOWN_LEVEL, axis=2) >= BLOWN_CHANNELS
    brightness = max(float(np.percentile(luma[rows, cols], BRIGHT_PERCENTILE)), whites)
    lift = max(1.0, dim / max(brightness, 1.0))
    return FaceQuality(
        sharpness=_sharpness(luma, (rows, cols)) * lift**2,
        brightness=brightness,
        drawn_share=float(np.count_nonzero(drawn & ~clipped) / drawn.size),
        blown_share=float(np.count_nonzero(blown) / drawn.size),
    )


def photo_sharpness(rgb: np.ndarray) -> float:
    """The sharpness of the whole photo `rgb` ((H, W, 3) uint8 RGB), read as
    `FaceQuality.sharpness` reads a face's, with the photo reduced to
    QUALITY_SIDE px on its long side (never enlarged). Where no face is found,
    it tells a photo blurred past finding one from a photo of no one (see
    `PipelineSettings.min_photo_sharpness`)."""
    height, width = rgb.shape[:2]
    factor = QUALITY_SIDE / max(height, width)
    if factor < 1:
        size = (max(round(width * factor), 1), max(round(height * factor), 1))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return _sharpness(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32))


def _sharpness(luma: np.ndarray, region: tuple[slice, slice] = (slice(None), slice(None))) -> float:
    """Twice the smaller of the variances of `luma`'s second derivatives across
    and down, counted in `region` (the filters see the whole image, so the
    region's border pixels have real neighbours)."""
    across = cv2.filter2D(luma, cv2.CV_32F, SECOND_DERIVATIVE)[region]
    down = cv2.filter2D(luma, cv2.CV_32F, SECOND_DERIVATIVE.T)[region]
    return float(2 * min(across.var(), down.var()))


def relative_sharpness(rgb: np.ndarray, face: Face, reference: Face) -> float:
    """How sharp `face` is next to `reference`: the ratio of the Laplacian
    variances of the central half of their level face patches (1 = as sharp;
    a face blurred into the background reads a few hundredths). Both patches
    are cut at the smaller `face`'s own resolution (at most COMPARE_SIDE), so a
    face is not judged blurrier for being smaller. Faces in `rgb`'s pixels,
    (H, W, 3) uint8 RGB."""
    side = max(8, min(COMPARE_SIDE, round(MESH_ROI_SCALE * face.length)))
    inner = slice(side // 4, side - side // 4)

    def sharpness(of: Face) -> float:
        luma = cv2.cvtColor(face_patch(rgb, of, side), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(luma, cv2.CV_32F)[inner, inner].var())

    return sharpness(face) / max(sharpness(reference), 1e-6)
