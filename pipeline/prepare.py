"""`prepare`: one image's bytes in, a `Prepared` avatar or a precise rejection out.

The stages, and why they run in this order:

1. probe the header (limits before any pixel), decode at the largest JPEG DCT
   reduction that still leaves `detect_side` pixels, reduce to exactly that;
2. detect face candidates and confirm them with Face Mesh; when none is found,
   try a padded canvas, then the image turned by 90, 270 and 180 degrees
   (phones that wrote the pixels sideways without an EXIF tag); make sure the
   main face's mesh is the right way up; count the other people (looking at
   the photo mirrored where the first look was unsure of someone, and reading
   a head's turn both ways near the limit, see `pipeline.mirrored`);
3. place the 1:1 crop from the main face's five points; decode again only when
   the crop needs more pixels than the detection decode has (a JPEG at the
   largest reduction whose pixels still cover the output: warpAffine then never
   shrinks by more than 2x); warp the 1:1 crop and measure its quality and
   whether the mouth is covered;
4. run the rules; the first failed rejecting check raises `Rejected`;
5. warp the 4:3 and 3:4 crops from the same decode and encode all three.

The 4:3 and 3:4 are placed in step 3 (`pipeline.framing.fit`), so the rules
see how much of each the fill would invent.

Pure and deterministic: the same bytes and settings give the same record and
the same output bytes.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from pipeline.align import (
    Framing,
    face_transform,
    framings,
    output_scale,
    rebase,
    transform_points,
)
from pipeline.aspect import AspectRatio
from pipeline.decode import decode
from pipeline.detect import Candidate, detect, detect_tiled
from pipeline.encode import encode_jpeg
from pipeline.errors import Rejected
from pipeline.framing import fit
from pipeline.landmarks import Face, fit_faces, orient, unfitted
from pipeline.likeness import human_score
from pipeline.mirrored import look_again_mirrored, read_yaw_both_ways
from pipeline.models import FaceModels
from pipeline.occlusion import mouth_detail, under_eye_light
from pipeline.people import count_people, second_opinion
from pipeline.probe import Probe, probe
from pipeline.quality import (
    QUALITY_SIDE,
    eye_whites,
    face_pixels,
    photo_sharpness,
    relative_sharpness,
)
from pipeline.quality import measure as measure_quality
from pipeline.record import Box, FaceInfo, Prepared, Rendition, SourceInfo
from pipeline.rules import checks, measure, small_faces_check, verdict
from pipeline.settings import PipelineSettings
from pipeline.stopwatch import Stopwatch
from pipeline.version import package_version
from pipeline.warp import filled_ratio, warp, warp_together

REDUCTIONS = (8, 4, 2, 1)  # JPEG DCT scaling factors, largest first
# Quarter turns (counter-clockwise) tried in order while no face is found:
# upright, then the two sideways phone orientations, then upside down.
TURNS = (0, 1, 3, 2)


def prepare(data: bytes, models: FaceModels, settings: PipelineSettings) -> Prepared:
    """Turn image bytes into three aligned renditions and their record.

    Raises `ImageError` for bytes that are no usable image (from the probe or
    the decoder) and `Rejected` when a face or image rule fails; a Rejected
    carries the source, the main face when there is one, the box of every
    face found (`candidates`, the main one first) and the checks.
    """
    watch = Stopwatch()
    with watch("decode"):
        info = probe(data, settings)
        source = SourceInfo(
            sha256=hashlib.sha256(data).hexdigest(),
            format=info.format,
            width=info.width,
            height=info.height,
            bytes=info.bytes,
        )
        first_reduction = detection_reduction(info, settings.detect_side)
        first = decode(data, info, first_reduction)
        small = shrink(first.rgb, settings.detect_side)

    faces, candidates = find_faces(small, models, settings, watch)
    if not faces:
        # A second look, in tiles at a higher resolution, tells a photo of no
        # one from one of people too small for the first; where it finds no
        # face either, the person detector says whether anyone is there.
        with watch("decode"):
            reduction = detection_reduction(info, settings.small_face_side)
            pixels = first if reduction == first_reduction else decode(data, info, reduction)
            large = shrink(pixels.rgb, settings.small_face_side)
        with watch("detect"):
            found = detect_tiled(large, models, settings.min_small_face_score)
            boxes = [c.box for c in found]
            # A photo blurred past finding a face is told so, whoever is in it.
            sharpness = photo_sharpness(small)
            blurred = sharpness < settings.min_photo_sharpness
            people = 0 if boxes or blurred else count_people(small, models)
        heights = [h / large.shape[0] for *_, h in boxes]
        check = small_faces_check(heights, people, sharpness, _jpeg_quality(info), settings)
        scale = info.width / large.shape[1]
        raise Rejected(
            check.message,
            code=check.code,
            checks=(check,),
            source=source,
            candidates=tuple((x * scale, y * scale, w * scale, h * scale) for x, y, w, h in boxes),
        )
    faces, candidates = look_again_mirrored(small, faces, candidates, models, settings, watch)
    faces = [read_yaw_both_ways(small, faces[0], models, settings, watch), *faces[1:]]
    with watch("mesh"):
        others, unfit = other_people(small, faces, candidates, settings)
    # To upright source pixels: the reduced image's exact size ratio, not the
    # nominal decode scale (a DCT reduction rounds odd sizes up).
    sx, sy = info.width / small.shape[1], info.height / small.shape[0]
    faces = [f.scaled(sx, sy) for f in faces]
    unfit_boxes = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in unfit]
    main = faces[0]
    frames = framings(settings.output_size)
    with watch("align"):
        points = main.five_points()
        head_top = main.head_top(settings.head_allowance)
        fits = fit(points, head_top, main.chin(), (info.width, info.height), frames[1:], settings)
        transforms = {frames[0].aspect_ratio: face_transform(points, frames[0])}
        transforms.update((ar, f.matrix) for ar, f in fits.items())
        upscale = output_scale(transforms[AspectRatio.SQUARE])
    with watch("decode"):
        # The detection decode serves the crops when it is no coarser than they
        # need (always for a non-JPEG: that one is the full decode).
        reduction = crop_reduction(upscale)
        pixels = first if reduction >= first_reduction else decode(data, info, reduction)
    with watch("align"):
        pixel_scale = pixels.rgb.shape[1] / info.width
        crops = {frames[0].aspect_ratio: _warp(pixels.rgb, transforms, frames[0], pixel_scale)}
        square = crops[AspectRatio.SQUARE][0]
        look = face_pixels(square)
        # The mesh in those pixels: the 1:1's, scaled to QUALITY_SIDE.
        mesh = transform_points(transforms[AspectRatio.SQUARE], main.mesh[:, :2])
        mesh = mesh * (QUALITY_SIDE / square.shape[1])
        quality = measure_quality(look, settings.warn_brightness, eye_whites(look.luma, mesh))
        mouth = mouth_detail(look.luma, mesh)
        eyes_light = under_eye_light(look.luma, mesh)
        # The share each framing will fill, as its warp will count it.
        fills = {
            f.aspect_ratio: filled_ratio(
                rebase(transforms[f.aspect_ratio], pixel_scale),
                pixels.rgb.shape,
                (f.width, f.height),
            )
            for f in frames
        }
        headroom = min(f.headroom for f in fits.values())
    with watch("detect"):
        human = human_score(square, models)
        turns = main.upright_turns()
        persons = second_opinion(small, turns, human, quality.brightness, settings, models)

    measures = measure(
        main,
        others,
        (info.width, info.height),
        upscale,
        quality,
        human,
        _jpeg_quality(info),
        mouth,
        eyes_light,
        fills,
        headroom,
        persons,
    )
    all_checks = checks(measures, settings)
    face = FaceInfo(
        box=main.box,
        score=main.score,
        landmarks=points,
        pose=main.pose(),
        quality=quality.to_dict(),
    )
    failed = verdict(all_checks)
    if failed is not None:
        raise Rejected(
            failed.message,
            code=failed.code,
            checks=all_checks,
            source=source,
            face=face,
            candidates=(*(f.box for f in faces), *unfit_boxes),
        )

    with watch("align"):
        # One source region and fill serve both head-and-shoulders framings.
        rest = frames[1:]
        matrices = [rebase(transforms[f.aspect_ratio], pixel_scale) for f in rest]
        together = warp_together(pixels.rgb, matrices, rest)
        crops.update(zip((f.aspect_ratio for f in rest), together, strict=True))
    with watch("encode"):
        renditions = {
            f.aspect_ratio: rendition(
                f, transforms[f.aspect_ratio], *crops[f.aspect_ratio], settings
            )
            for f in frames
        }
    return Prepared(
        source=source,
        face=face,
        checks=all_checks,
        renditions=renditions,
        versions=versions(settings),
        timings_ms={k: round(v, 2) for k, v in watch.ms.items()},
    )


def rendition(
    frame: Framing, matrix: np.ndarray, rgb: np.ndarray, filled: float, settings: PipelineSettings
) -> Rendition:
    """The encoded crop `rgb` of `frame`, cut through `matrix` (2x3, upright
    source -> output), `filled` its share of filled pixels."""
    return Rendition(
        aspect_ratio=frame.aspect_ratio,
        width=frame.width,
        height=frame.height,
        transform=(
            (float(matrix[0, 0]), float(matrix[0, 1]), float(matrix[0, 2])),
            (float(matrix[1, 0]), float(matrix[1, 1]), float(matrix[1, 2])),
        ),
        filled_ratio=filled,
        content_type="image/jpeg",
        data=encode_jpeg(rgb, settings.jpeg_quality),
    )


def find_faces(
    rgb: np.ndarray, models: FaceModels, settings: PipelineSettings, watch: Stopwatch
) -> tuple[list[Face], list[Candidate]]:
    """Confirmed faces in `rgb` ((H, W, 3) uint8 RGB), largest first (the
    first one oriented, see `orient`), and the candidates they came from, in
    its pixels. No face: ([], []).

    The first attempt that shows any face wins: per turn (see TURNS) the
    plain detector passes, then the padded canvas (see `detect`). When the
    main face then lies sideways or upside down in the pixels, so does the
    whole photo, and the detectors missed whoever else is in it: they run
    again on the photo turned upright."""
    for turns in TURNS:
        for canvas in (False, True):
            faces, candidates = _attempt(rgb, models, settings, watch, turns, canvas)
            if not faces:
                continue
            upright = faces[0].upright_turns()
            if upright != turns:
                again = _attempt(rgb, models, settings, watch, upright, False)
                faces, candidates = again if again[0] else (faces, candidates)
            return faces, candidates
    return [], []


def _attempt(
    rgb: np.ndarray,
    models: FaceModels,
    settings: PipelineSettings,
    watch: Stopwatch,
    turns: int,
    canvas: bool,
) -> tuple[list[Face], list[Candidate]]:
    """One detection attempt (see `detect`) and the faces the landmark model
    confirms among its candidates, the main one oriented."""
    with watch("detect"):
        candidates = detect(rgb, models, settings.min_detection_score, turns, canvas)
    with watch("mesh"):
        faces = fit_faces(rgb, candidates, models, settings.max_faces_checked)
        if faces:
            faces[0] = orient(rgb, faces[0], models)
    return faces, candidates


def other_people(
    rgb: np.ndarray, faces: list[Face], candidates: list[Candidate], settings: PipelineSettings
) -> tuple[list[float], list[Box]]:
    """Everyone besides the main face `faces[0]` who may count for face_count,
    as sizes relative to it, and the boxes of those among them the landmark
    model could not fit; in `rgb`'s pixels.

    The other fitted faces count, except faces of comparable size blurred into
    the background (the labels do not count heavily blurred faces; smaller
    ones never count, so only those are compared); so do strong detections
    outside every fitted face (a face turned away or covered)."""
    main = faces[0]
    sizes = [
        f.length / main.length
        for f in faces[1:]
        if f.length < settings.max_faces_ratio * main.length
        or relative_sharpness(rgb, f, main) >= settings.min_other_sharpness
    ]
    unfit = [c.box for c in unfitted(candidates, faces, settings.min_unfitted_score)]
    return sizes + [h / main.length for *_, h in unfit], unfit


def _jpeg_quality(info: Probe) -> int:
    """The quality the file was saved at (see `Probe.jpeg_quality`), 100 for a
    format without lossy JPEG compression."""
    return info.jpeg_quality if info.jpeg_quality is not None else 100


def detection_reduction(info: Probe, detect_side: int) -> int:
    """The largest reduction (every format decodes reduced, see pipeline/decode.py)
    whose long side is still at least `detect_side`."""
    long_side = max(info.width, info.height)
    return next(r for r in REDUCTIONS if r == 1 or -(-long_side // r) >= detect_side)


def crop_reduction(upscale: float) -> int:
    """The largest reduction that still has at least one decoded pixel per output
    pixel of the 1:1 crop (`upscale`: output px per source px), so the warp
    neither enlarges a reduced decode nor shrinks by more than 2x."""
    return next(r for r in REDUCTIONS if r == 1 or upscale * r <= 1.0)


def shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    """`rgb` reduced so its long side is `side` (unchanged when already no
    longer): (h, w, 3) uint8 RGB, C-contiguous, as the detectors need.

    A shrink by less than 2x (what is left after a DCT-reduced JPEG decode) is
    bilinear, which does not alias at that ratio and costs a tenth of an area
    average; larger shrinks (full decodes of other formats) average areas."""
    height, width = rgb.shape[:2]
    factor = side / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(round(width * factor), 1), max(round(height * factor), 1))
    interpolation = cv2.INTER_LINEAR if factor > 0.5 else cv2.INTER_AREA
    return cv2.resize(rgb, size, interpolation=interpolation)


def _warp(
    rgb: np.ndarray, transforms: dict[str, np.ndarray], frame: Framing, scale: float
) -> tuple[np.ndarray, float]:
    return warp(rgb, rebase(transforms[frame.aspect_ratio], scale), frame)


def versions(settings: PipelineSettings) -> dict[str, str]:
    """What produced a record: the package, the MediaPipe models and a short hash
    of every setting (two records with the same hash used the same limits)."""
    digest = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]
    return {"pipeline": package_version(), "mediapipe": FaceModels.version(), "settings": digest}
