"""Cutting a framing out of the source through its transform, and filling what
lies outside the source, never with black bars: the 1:1 (`warp`) with a
reflection faded into blur, as it always was, so its bytes do not change; the
head-and-shoulders framings (`warp_together`) by spreading the photo's edge
(`pipeline.fill`), which leaves no seam and mirrors nothing.

Coordinates and transforms as in `pipeline.align`: continuous (x, y) pixels,
origin at the top-left corner, 2x3 similarity matrices mapping source to output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.align import Framing, invert, output_scale, transform_points
from pipeline.fill import photo_rect, spread_fill

# warpAffine samples without anti-aliasing; below this many output pixels per
# source pixel (a shrink of more than 2x) `warp` first area-reduces the region
# it needs, so the warp itself never shrinks by more than 2x.
MIN_WARP_SCALE = 0.5

# The 1:1's fill outside the source: a reflection (it continues the colours at the
# border, so there is no seam), faded over this share of the output's short side
# into a Gaussian blur of it with a sigma of this share of the long side. The
# blur is strong enough that a mirrored head reads as a soft background, and the
# fade short enough that little mirrored detail shows near the border
# (chosen by eye on photos cut by the frame, against sigma 0.03 and fade 0.08).
FILL_BLUR_SIGMA = 0.07
FILL_FEATHER = 0.04
# The blurred fill is smooth: it is made on this coarse a grid of output px and
# enlarged bilinearly.
BACKGROUND_CELL = 8


def warp(rgb: np.ndarray, matrix: np.ndarray, framing: Framing) -> tuple[np.ndarray, float]:
    """Cut `framing` out of `rgb` through `matrix` (which maps `rgb`'s own (x, y),
    so `rebase` it first for a reduced decode).

    `rgb`: (H, W, 3) uint8. Returns the (height, width, 3) uint8 output and
    filled_ratio, the share of output pixels whose centre lies outside `rgb`;
    those are filled with a blurred reflection of the image, never black.
    Sampling is bicubic when enlarging (measured on a portrait enlarged 1.5-2.5x:
    1.3-2.4 dB PSNR over bilinear) and bilinear otherwise (as good when
    shrinking, and 5-15x faster). warpAffine does not anti-alias, so for a
    shrink beyond 2x (`MIN_WARP_SCALE`) the needed region is first area-reduced;
    callers should still decode at a reduction that keeps the 1:1 within a 2x
    shrink, since that pass costs time. Deterministic: the same inputs give the
    same pixels.
    """
    (result,) = _cut(rgb, [matrix], [framing], spread=False)
    return result


def warp_together(
    rgb: np.ndarray, matrices: Sequence[np.ndarray], frames: Sequence[Framing]
) -> list[tuple[np.ndarray, float]]:
    """`warp` for the head-and-shoulders framings of one face (the 4:3 and the
    3:4, their matrices a scale, quarter turns and a shift: see
    `pipeline.framing`), one (out, filled_ratio) per framing, filled by
    spreading the photo's edge (`pipeline.fill.spread_fill`), not by reflection.

    Framings cut at one output scale share the source region, made once, so
    each further framing costs little more than its warpAffine; framings that
    also differ only by a shift of whole output pixels are cut from one warp of
    the rectangle covering them all, when that is smaller than the warps
    apart: their outputs are then read-only views into it. Framings at
    different scales are cut one by one. Raises ValueError for a matrix that
    turns by other than quarter turns."""
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    # The photo's edges must run along the frame's for the fill's strips.
    if not all(m[0, 1] == m[1, 0] == 0.0 or m[0, 0] == m[1, 1] == 0.0 for m in matrices):
        raise ValueError("the spread fill needs framings turned by quarter turns only")
    scale = output_scale(matrices[0])
    if all(math.isclose(output_scale(m), scale, rel_tol=1e-9) for m in matrices):
        return _cut(rgb, matrices, frames, spread=True)
    return [_cut(rgb, [m], [f], spread=True)[0] for m, f in zip(matrices, frames, strict=True)]


def _cut(
    rgb: np.ndarray, matrices: Sequence[np.ndarray], frames: Sequence[Framing], spread: bool
) -> list[tuple[np.ndarray, float]]:
    """The outputs (out, filled_ratio) of `frames` cut through `matrices` (one
    output scale and fill size), filled by spreading or (`spread` False) by the
    blurred reflection."""
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    scale = output_scale(matrices[0])
    fill = _fill_size(frames[0])
    for matrix, frame in zip(matrices, frames, strict=True):
        if not math.isclose(output_scale(matrix), scale, rel_tol=1e-9) or _fill_size(frame) != fill:
            raise ValueError("framings warped together need one output scale and fill size")
    sizes = [(f.width, f.height) for f in frames]
    height, width = rgb.shape[:2]
    corners = np.concatenate(
        [_source_corners(m, size) for m, size in zip(matrices, sizes, strict=True)]
    )
    inside = corners.min() >= 0 and bool(np.all(corners.max(axis=0) <= (width, height)))
    filled = [
        0.0 if inside else filled_ratio(m, rgb.shape, size)
        for m, size in zip(matrices, sizes, strict=True)
    ]
    canvas = _canvas(matrices, sizes)
    targets = [canvas[:2]] if canvas is not None else list(zip(matrices, sizes, strict=True))
    part, from_part, pads = _source_part(rgb, scale, corners)
    backgrounds: list[np.ndarray | None] = [None] * len(targets)
    if max(filled) == 0.0 or spread:
        # Only interpolation reaches past the edge, or the fill is the edge
        # stretched out: a border made once, at a fraction of the cost of
        # warpAffine's per-pixel border handling. (Without fill, reflection is
        # the same as warpAffine's BORDER_REFLECT_101.)
        border = cv2.BORDER_REPLICATE if spread else cv2.BORDER_REFLECT_101
        source = cv2.copyMakeBorder(part, *pads, border) if any(pads) else part
        from_source = _translation(-pads[2], -pads[0])
    else:
        feather, sigma = (size / output_scale(matrices[0] @ from_part) for size in fill)
        blur, from_blur = _blurred_reflection(part, pads, sigma)
        source, from_source = _faded_border(part, pads, feather, blur, from_blur)
        backgrounds = [_background(blur, m @ from_part @ from_blur, size) for m, size in targets]
    outs = []
    for (matrix, size), background in zip(targets, backgrounds, strict=True):
        to_output = matrix @ from_part @ from_source
        out = cv2.warpAffine(
            source,
            _pixel_centred(to_output),
            size,
            dst=background,
            flags=cv2.INTER_CUBIC if output_scale(to_output) > 1.0 else cv2.INTER_LINEAR,
            # Where the source ends, the fill outside is the background already.
            borderMode=cv2.BORDER_REFLECT_101 if background is None else cv2.BORDER_TRANSPARENT,
        )
        if spread and max(filled) > 0.0:
            spread_fill(out, photo_rect(matrix, rgb.shape))
        outs.append(out)
    if canvas is not None:
        # Views into the one canvas (no copies), read-only since they overlap.
        outs[0].flags.writeable = False
        outs = [outs[0][y : y + h, x : x + w] for x, y, w, h in canvas[2]]
    return list(zip(outs, filled, strict=True))


def _canvas(
    matrices: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, tuple[int, int], list[tuple[int, int, int, int]]] | None:
    """When the matrices differ only by shifts of whole output pixels and the
    rectangle covering every output has fewer pixels than the outputs apart:
    one matrix and size for that rectangle, and each output's window (x, y,
    width, height) in it; else None."""
    shifts = np.array([m[:, 2] - matrices[0][:, 2] for m in matrices])
    whole = np.round(shifts)
    same_linear = all(np.array_equal(m[:, :2], matrices[0][:, :2]) for m in matrices)
    if len(matrices) < 2 or not same_linear or np.abs(shifts - whole).max() > 1e-6:
        return None
    # Output i's pixel (u, v) is the first output's pixel (u, v) - shift_i.
    lows = -whole
    highs = lows + np.array(sizes)
    origin = lows.min(axis=0)
    width, height = (highs.max(axis=0) - origin).astype(int)
    if width * height >= sum(w * h for w, h in sizes):
        return None
    matrix = matrices[0].copy()
    matrix[:, 2] -= origin
    windows = [(int(x), int(y), w, h) for (x, y), (w, h) in zip(lows - origin, sizes, strict=True)]
    return matrix, (int(width), int(height)), windows


def _fill_size(framing: Framing) -> tuple[float, float]:
    """The fill's feather and blur sigma for `framing`, in output px."""
    short, long = sorted((framing.width, framing.height))
    return FILL_FEATHER * short, FILL_BLUR_SIGMA * long


def _translation(x: float, y: float) -> np.ndarray:
    """The (3, 3) matrix adding (x, y)."""
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _pixel_centred(matrix: np.ndarray) -> np.ndarray:
    """OpenCV puts pixel centres on integers: shift by half a pixel either side."""
    half = np.array([0.5, 0.5])
    out = matrix.copy()
    out[:, 2] = matrix[:, :2] @ half + matrix[:, 2] - half
    return out


def _source_part(
    rgb: np.ndarray, scale: float, corners: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The part of `rgb` the outputs sample (`corners`: their footprints, `scale`:
    their output px per source px), the (3, 3) matrix from its pixels to
    `rgb`'s, and the padding (top, bottom, left, right) in its pixels that the
    footprints need beyond the image.

    Beyond a 2x shrink the part is area-reduced by the integer factor that
    leaves a shrink within 2x (integer factors take OpenCV's fast path)."""
    height, width = rgb.shape[:2]
    factor = int(1 / scale) if scale < MIN_WARP_SCALE else 1  # scale * factor in [0.5, 1)
    factor = min(factor, width, height)  # a block never exceeds the image
    reach = 3 * factor  # the bicubic kernel's reach (2 px) and rounding, in source px
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - reach
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + reach
    # The part inside the image (at least one block even when the footprint misses it),
    # in whole blocks: that trims less than `factor` source px, under one output px.
    inner_x0, inner_y0 = min(max(x0, 0), width - factor), min(max(y0, 0), height - factor)
    blocks_x = max((min(x1, width) - inner_x0) // factor, 1)
    blocks_y = max((min(y1, height) - inner_y0) // factor, 1)
    part = rgb[inner_y0 : inner_y0 + blocks_y * factor, inner_x0 : inner_x0 + blocks_x * factor]
    if factor > 1:
        part = cv2.resize(part, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
    pads = (
        max(-(-(inner_y0 - y0) // factor), 0),
        max(-(-(y1 - inner_y0) // factor) - blocks_y, 0),
        max(-(-(inner_x0 - x0) // factor), 0),
        max(-(-(x1 - inner_x0) // factor) - blocks_x, 0),
    )
    # A part pixel (x, y) covers source (inner_x0, inner_y0) + factor * (x, y).
    from_part = np.array([[factor, 0.0, inner_x0], [0.0, factor, inner_y0], [0.0, 0.0, 1.0]])
    return part, from_part, pads


def _blurred_reflection(
    part: np.ndarray, pads: tuple[int, int, int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian blur (sigma `sigma` px) of `part` and its reflection, covering
    `pads` (top, bottom, left, right) px around it, on a coarse grid, and the
    (3, 3) matrix from its pixels to `part`'s.

    A grid cell is `grid` px, a power of two leaving a sigma of at least 2
    cells and the part at least 8 cells across: the part is area-reduced by
    halving (OpenCV's fast path), reflected at that scale, and blurred. A last
    partial row or column of cells is left out, so the reflection past the
    bottom and right edges is mirrored less than a cell (at most half a sigma,
    an eighth of the part) off the edge: invisible under the blur. The grid
    reaches one cell past `pads` so bilinear enlargement never runs out of it."""
    height, width = part.shape[:2]
    grid = 2 ** max(math.floor(math.log2(min(sigma / 2, height / 8, width / 8))), 0)
    cells = _cells(part, grid)
    top, bottom, left, right = pads
    # Cells of padding on each side: enough for `pads` (past the cells left out
    # at the bottom and right) and one more.
    cells_top, cells_left = -(-top // grid) + 1, -(-left // grid) + 1
    cells_bottom = -(-(height - cells.shape[0] * grid + bottom) // grid) + 1
    cells_right = -(-(width - cells.shape[1] * grid + right) // grid) + 1
    blur = cv2.copyMakeBorder(
        cells, cells_top, cells_bottom, cells_left, cells_right, cv2.BORDER_REFLECT
    )
    kernel = cv2.getGaussianKernel(2 * math.ceil(3 * sigma / grid) + 1, sigma / grid)
    blur = cv2.sepFilter2D(blur, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    from_blur = np.array(
        [[grid, 0.0, -cells_left * grid], [0.0, grid, -cells_top * grid], [0.0, 0.0, 1.0]]
    )
    return blur, from_blur


def _faded_border(
    part: np.ndarray,
    pads: tuple[int, int, int, int],
    feather: float,
    blur: np.ndarray,
    from_blur: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`part` padded by up to `feather` px (where `pads` asks for any) with its
    reflection (it continues the colours at the edge, so there is no seam)
    fading with the distance from `part` into `blur` (see `_blurred_reflection`,
    `from_blur` its matrix to part px). Returns it and its matrix to part px.

    Done in source pixels, where the edges are straight, so only the band within
    the feather is blended; past it the blur is the output's background."""
    # Past the feather, all blur: the pixels where the bicubic kernel (2 px) would
    # reach past the padding, as warpAffine then keeps the background there.
    band = math.ceil(feather) + 3
    top, bottom, left, right = (min(p, band) for p in pads)
    source = cv2.copyMakeBorder(part, top, bottom, left, right, cv2.BORDER_REFLECT_101)
    height, width = part.shape[:2]
    # Squared distance of each pixel centre from the part along each axis, in feathers.
    ys = np.arange(source.shape[0], dtype=np.float32) + 0.5 - top
    xs = np.arange(source.shape[1], dtype=np.float32) + 0.5 - left
    dy2 = np.square(np.maximum(np.maximum(-ys, ys - height), 0) / feather)
    dx2 = np.square(np.maximum(np.maximum(-xs, xs - width), 0) / feather)
    # Source pixel (x, y) is enlarged-blur pixel (x, y) + offset.
    grid = int(from_blur[0, 0])
    offset_x, offset_y = int(-from_blur[0, 2]) - left, int(-from_blur[1, 2]) - top
    all_cols, inner_rows = (0, source.shape[1]), (top, top + height)
    for (r0, r1), (c0, c1) in (
        ((0, top), all_cols),
        ((top + height, source.shape[0]), all_cols),
        (inner_rows, (0, left)),
        (inner_rows, (left + width, source.shape[1])),
    ):
        if r0 >= r1 or c0 >= c1:
            continue
        blurred = _enlarged(
            blur, grid, (r0 + offset_y, r1 + offset_y), (c0 + offset_x, c1 + offset_x)
        )
        weight = np.sqrt(np.add.outer(dy2[r0:r1], dx2[c0:c1]))
        np.minimum(weight, np.float32(1.0), out=weight)
        view = source[r0:r1, c0:c1]
        cv2.blendLinear(blurred, view, weight, 1.0 - weight, dst=view)
    return source, _translation(-left, -top)


def _background(blur: np.ndarray, to_output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The output of `size` (width, height) filled with `blur` mapped through
    `to_output` (blur px to output px): warped onto a grid of
    `BACKGROUND_CELL` output px, then enlarged bilinearly."""
    width, height = size
    small_size = (-(-width // BACKGROUND_CELL), -(-height // BACKGROUND_CELL))
    to_small = np.diag([small_size[0] / width, small_size[1] / height]) @ to_output
    small = cv2.warpAffine(
        blur,
        _pixel_centred(to_small),
        small_size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)


def _cells(image: np.ndarray, grid: int) -> np.ndarray:
    """The means of `image`'s `grid` x `grid` px cells (`grid` a power of two no
    larger than the image), leaving out a last partial row or column."""
    height, width = image.shape[:2]
    rows, cols = height // grid, width // grid
    small = image[: rows * grid, : cols * grid]
    while small.shape[0] > rows:
        size = (small.shape[1] // 2, small.shape[0] // 2)
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    return small


def _enlarged(
    small: np.ndarray, grid: int, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """`cv2.resize(small, grid times larger, INTER_LINEAR)[rows, cols]`, enlarging
    only the cells (and one more on each side) that this block reads."""
    (r0, r1), (c0, c1) = rows, cols
    top, left = max(r0 // grid - 1, 0), max(c0 // grid - 1, 0)
    bottom = min(-(-r1 // grid) + 1, small.shape[0])
    right = min(-(-c1 // grid) + 1, small.shape[1])
    size = ((right - left) * grid, (bottom - top) * grid)
    big = cv2.resize(small[top:bottom, left:right], size, interpolation=cv2.INTER_LINEAR)
    return big[r0 - top * grid : r1 - top * grid, c0 - left * grid : c1 - left * grid]


def _source_corners(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, 2): the output rectangle's corners mapped back to source (x, y)."""
    width, height = size
    corners = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
    return transform_points(invert(matrix), corners)


def filled_ratio(matrix: np.ndarray, shape: tuple[int, ...], size: tuple[int, int]) -> float:
    """The share of output pixels whose centre `matrix` maps outside the source
    rectangle [0, W] x [0, H], counted exactly row by row: along an output
    row each source coordinate is linear, so the inside is one interval."""
    width, height = size
    back = invert(matrix)
    vs = np.arange(height) + 0.5
    # Per output row, the inside in continuous output x: lo <= u <= hi.
    lo, hi = np.zeros(height), np.full(height, float(width))
    for (a, b, c), limit in ((back[0], shape[1]), (back[1], shape[0])):
        offset = b * vs + c  # the source coordinate at u = 0
        if a == 0.0:
            hi = np.where((offset >= 0) & (offset <= limit), hi, -np.inf)
            continue
        ends = np.stack([-offset / a, (limit - offset) / a])
        lo, hi = np.maximum(lo, ends.min(axis=0)), np.minimum(hi, ends.max(axis=0))
    # Output pixel u is inside when lo <= u + 0.5 <= hi.
    first = np.maximum(np.ceil(lo - 0.5), 0)
    last = np.minimum(np.floor(hi - 0.5), width - 1)
    inside = float(np.maximum(last - first + 1, 0).sum())
    return 1.0 - inside / (width * height)
