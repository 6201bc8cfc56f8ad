"""Face Mesh on each detection: confirm it is a face, then measure it.

The 468-point mesh gives the five alignment points (InsightFace order and
meaning) and the head pose. Coordinates are (x, y) pixels of the image the
mesh ran on, origin at its top-left corner; `Face.scaled` moves them to the
upright source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.detect import Candidate, box_contains
from pipeline.models import FaceModels
from pipeline.record import Box, Point

# Face Mesh indices (MediaPipe's canonical face model). "Right" is the
# subject's right, which is on the image's left for an upright face.
RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (263, 362)
NOSE_TIP = 1
MOUTH_RIGHT_CORNER = 61
MOUTH_LEFT_CORNER = 291
FOREHEAD = 10  # top of the forehead, on the midline
CHIN = 152
RIGHT_CHEEK_EDGE = 234  # face outline at eye level, next to the ear
LEFT_CHEEK_EDGE = 454

# The landmark model expects the face to fill 1/1.5 of its square input
# (MediaPipe's own detection-to-ROI and tracking rule). A detection box that is
# off can leave part of the face outside that square and the model then says
# "no face", so a wider square is tried next. (A third, 2.5, fits one more
# hand-covered face in the dev set but also "finds" a face in a coffee cup.)
ROI_SCALES = (1.5, 2.0)
MESH_ROI_SCALE = 1.5

# Side of the face patch `orient` shows the short-range detector (its input
# size), and how many times at most it turns a fit round.
ORIENT_SIDE = 128
ORIENT_ROUNDS = 2

# Each eye's contour (lids, corner to corner), the subject's right eye first.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)

# Eye lids (upper, lower) and the inner lips (upper, lower), for openness.
RIGHT_EYE_LIDS = (159, 145)
LEFT_EYE_LIDS = (386, 374)
INNER_LIPS = (13, 14)

# How far the nose tip stands in front of the eyes, in eye distances (about
# 30 mm in front of eyes about 63 mm apart). A head turned by yaw moves the
# nose tip sideways off the eyes' midpoint by this times tan(yaw) eye
# distances in the image, with no saturation as the head turns further.
NOSE_DEPTH = 0.5

# The mesh's forehead-to-chin line leans back by about this much on a level
# head: the median over the 20 frontal portraits of the dev set, which read
# -2 to +13 degrees. Subtracted so that a level head reads a pitch near 0.
PITCH_NEUTRAL_DEGREES = 5.0


@dataclass(frozen=True, eq=False)
class Face:
    """A face the landmark model confirmed.

    `mesh`: (468, 3) float64, x and y in pixels, z the depth in the same scale
    (smaller is nearer the camera). `score`: the best detector score among the
    candidates that fell on this face, `keypoints` that candidate's six points
    (see `Candidate`), when there was one.
    """

    mesh: np.ndarray
    score: float
    keypoints: tuple[Point, ...] = ()

    @property
    def box(self) -> Box:
        """The tight box (x, y, width, height) of the mesh: forehead to chin,
        cheek to cheek. It may reach outside the image when the face is cut off."""
        x0, y0 = self.mesh[:, :2].min(axis=0)
        x1, y1 = self.mesh[:, :2].max(axis=0)
        return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    @property
    def length(self) -> float:
        """Forehead-to-chin distance in pixels, whatever the roll."""
        return float(np.hypot(*(self.mesh[CHIN, :2] - self.mesh[FOREHEAD, :2])))

    def contains(self, point: Point) -> bool:
        return box_contains(self.box, point)

    def scaled(self, sx: float, sy: float) -> Face:
        """The same face in an image scaled by (sx, sy); depth scales with x."""
        return Face(
            mesh=self.mesh * np.array([sx, sy, sx]),
            score=self.score,
            keypoints=tuple((x * sx, y * sy) for x, y in self.keypoints),
        )

    def refitted(self, mesh: np.ndarray) -> Face:
        """The same detection with a new mesh."""
        return Face(mesh=mesh, score=self.score, keypoints=self.keypoints)

    def openness(self) -> dict[str, float]:
        """How open each eye and the mouth are: lid gap over eye width (open eyes
        0.2-0.5, closed under 0.1) and inner-lip gap over mouth width (closed 0,
        a wide-open mouth 0.4 and more), from the mesh, so any scale or roll."""

        def gap(pair: tuple[int, int], corners: tuple[int, int]) -> float:
            across = float(np.linalg.norm(self.mesh[corners[0], :2] - self.mesh[corners[1], :2]))
            apart = float(np.linalg.norm(self.mesh[pair[0], :2] - self.mesh[pair[1], :2]))
            return apart / max(across, 1e-6)

        return {
            "right_eye": gap(RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS),
            "left_eye": gap(LEFT_EYE_LIDS, LEFT_EYE_CORNERS),
            "mouth": gap(INNER_LIPS, (MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER)),
        }

    def five_points(self) -> dict[str, Point]:
        """The InsightFace 5 points. `left_eye` is the subject's right eye, on
        the image's left for an upright face (assigned by anatomy, not by
        position, so a face upside down in the pixels still aligns unmirrored);
        eye points are the centres of the eye corners; mouth points the corners."""

        def mean(indices: Iterable[int]) -> Point:
            x, y = self.mesh[list(indices), :2].mean(axis=0)
            return (float(x), float(y))

        return {
            "left_eye": mean(RIGHT_EYE_CORNERS),
            "right_eye": mean(LEFT_EYE_CORNERS),
            "nose": mean([NOSE_TIP]),
            "mouth_left": mean([MOUTH_RIGHT_CORNER]),
            "mouth_right": mean([MOUTH_LEFT_CORNER]),
        }

    def head_top(self, allowance: float) -> Point:
        """Where the top of the head and hair is taken to be: the forehead point
        (landmark 10) moved `allowance` forehead-to-chin lengths further from
        the chin, so along the face's own up-down axis, whatever the roll."""
        forehead, chin = self.mesh[FOREHEAD, :2], self.mesh[CHIN, :2]
        x, y = forehead + allowance * (forehead - chin)
        return (float(x), float(y))

    def chin(self) -> Point:
        """The bottom of the chin (landmark 152), (x, y) source px."""
        x, y = self.mesh[CHIN, :2]
        return (float(x), float(y))

    def pose(self) -> dict[str, float]:
        """Head pose in degrees from the mesh's own 3-D points (a geometric
        estimate, no fitted model): the face's left-right axis is cheek edge to
        cheek edge, its up-down axis forehead to chin.

        yaw > 0: the face turns towards the image's right (from cheek depth);
        pitch > 0: the chin goes down (from forehead/chin depth, less the
        neutral lean); roll > 0: the face turns clockwise in the image.
        Face Mesh fits a whole, symmetric face even to a profile, so its yaw
        stops growing near 50 degrees and can read 33 on a head turned 60; see
        `nose_yaw` for a reading that does not flatten.
        """
        across = self.mesh[LEFT_CHEEK_EDGE] - self.mesh[RIGHT_CHEEK_EDGE]
        across = across / np.linalg.norm(across)
        down = self.mesh[CHIN] - self.mesh[FOREHEAD]
        down = down - across * float(np.dot(down, across))
        down = down / np.linalg.norm(down)
        return {
            "yaw": math.degrees(math.asin(float(np.clip(across[2], -1, 1)))),
            "pitch": math.degrees(math.asin(float(np.clip(down[2], -1, 1))))
            - PITCH_NEUTRAL_DEGREES,
            "roll": math.degrees(math.atan2(float(across[1]), float(across[0]))),
        }

    def upright_turns(self) -> int:
        """The quarter turns (0-3, counter-clockwise as `np.rot90`) that stand
        the face upright: its roll rounded to the nearest 90 degrees."""
        return round(self.pose()["roll"] / 90) % 4

    def nose_yaw(self) -> tuple[float, float]:
        """Yaw in degrees (sign as in `pose`) from the detector's eyes and nose
        tip, and the eye distance it was read over, in pixels; (0, 0) without
        keypoints (or with both eyes on one point).

        The keypoints are not fitted to a face model: the nose tip's offset
        from the eyes' midpoint along the eye line, in eye distances, is
        NOSE_DEPTH * tan(yaw), and keeps growing as the head turns to profile."""
        if len(self.keypoints) < 3:
            return 0.0, 0.0
        right_eye, left_eye, nose = (np.asarray(p, dtype=np.float64) for p in self.keypoints[:3])
        eye_line = left_eye - right_eye
        distance = float(np.linalg.norm(eye_line))
        if distance == 0.0:
            return 0.0, 0.0
        offset = float(np.dot(nose - (right_eye + left_eye) / 2, eye_line)) / distance**2
        return math.degrees(math.atan2(offset, NOSE_DEPTH)), distance


def fit_faces(
    rgb: np.ndarray, candidates: list[Candidate], models: FaceModels, max_faces: int
) -> list[Face]:
    """Run the landmark model on the candidates, largest first, and keep those
    it confirms as faces: at most `max_faces`, largest (forehead to chin) first.

    A candidate whose centre falls inside a face already confirmed is the same
    face seen by another pass; it only contributes its score. `rgb`: the (H, W,
    3) uint8 RGB image the candidates were found on (any roll: the landmark
    model sees the face turned upright by the candidate's eye keypoints).
    """
    faces: list[Face] = []
    for candidate in candidates:
        same = next((i for i, f in enumerate(faces) if f.contains(candidate.centre)), None)
        if same is not None:
            if candidate.score > faces[same].score:
                faces[same] = Face(faces[same].mesh, candidate.score, candidate.keypoints)
            continue
        if len(faces) >= max_faces:
            break
        mesh = _mesh_for(rgb, candidate, models)
        if mesh is not None:
            faces.append(Face(mesh=mesh, score=candidate.score, keypoints=candidate.keypoints))
    return sorted(faces, key=lambda f: -f.length)


def unfitted(candidates: list[Candidate], faces: list[Face], min_score: float) -> list[Candidate]:
    """The strong candidates (score at least `min_score`) outside every face in
    `faces`: faces the landmark model could not fit (turned away, covered), one
    candidate each (the largest; a candidate centred inside a kept one is the
    same face). They still count as people in the image."""
    kept: list[Candidate] = []
    for candidate in candidates:  # largest first
        if candidate.score < min_score or any(f.contains(candidate.centre) for f in faces):
            continue
        if not any(box_contains(k.box, candidate.centre) for k in kept):
            kept.append(candidate)
    return kept


def orient(rgb: np.ndarray, face: Face, models: FaceModels) -> Face:
    """`face`, refitted when its mesh is upside down against the real face,
    else unchanged.

    The detectors often fire on a face lying sideways or upside down while
    placing its eyes as if it were upright, and the landmark model then fits
    an upright face to it, turned half round (most often) or by an odd angle.
    So the face's square is cut out the way the mesh says is upright and shown
    to the short-range detector as it is and turned half round; when the turned
    patch scores higher, the mesh is refitted that way up. An odd angle takes
    a second round (ORIENT_ROUNDS); each round costs two ~2 ms detector runs.
    `rgb`: the (H, W, 3) uint8 RGB image the face was found on, in its pixels.
    """
    for _ in range(ORIENT_ROUNDS):
        patch = face_patch(rgb, face, ORIENT_SIDE)
        if _best_score(models, patch[::-1, ::-1]) <= _best_score(models, patch):
            return face
        centre, side, angle = _mesh_square(face.mesh)
        mesh = _run_mesh(rgb, centre, side, angle + math.pi, models)
        if mesh is None:
            return face
        # The misfit's square can be well off the face: refit on the new
        # mesh's own square (MediaPipe's tracking step; rare, so affordable).
        refined = _run_mesh(rgb, *_mesh_square(mesh), models)
        face = face.refitted(refined if refined is not None else mesh)
    return face


def face_patch(rgb: np.ndarray, face: Face, side: int) -> np.ndarray:
    """The face's square (MESH_ROI_SCALE times the mesh's extent) cut out of
    `rgb` ((H, W, 3) uint8 RGB) and turned so its eye line is level: a (side,
    side, 3) uint8 RGB patch, bilinear (a patch is for looking at, not keeping)."""
    centre, square, angle = _mesh_square(face.mesh)
    # Rotate about the square's centre by the eye line's angle, scale the
    # square to `side` and move its centre to the patch's.
    to_patch = np.asarray(
        cv2.getRotationMatrix2D(centre, math.degrees(angle), side / square), np.float64
    )
    to_patch[:, 2] += np.array([side / 2, side / 2]) - np.array(centre)
    return cv2.warpAffine(rgb, to_patch, (side, side), flags=cv2.INTER_LINEAR)


def _best_score(models: FaceModels, rgb: np.ndarray) -> float:
    """The short-range detector's highest score on `rgb` (0 when it finds nothing)."""
    result = models.short_range.process(np.ascontiguousarray(rgb))
    return max((float(d.score[0]) for d in result.detections or ()), default=0.0)


def _mesh_for(rgb: np.ndarray, candidate: Candidate, models: FaceModels) -> np.ndarray | None:
    """The mesh of the candidate's face, or None when the model sees no face.

    One pass: a second one on the square the first mesh defines (MediaPipe's
    tracking step) moves the points by 0.1-0.9% of the square on the dev set
    (yaw by at most 4 degrees) and would cost a third of the landmark time."""
    (rx, ry), (lx, ly) = candidate.keypoints[0], candidate.keypoints[1]
    rotation = math.atan2(ly - ry, lx - rx)
    for scale in ROI_SCALES:
        side = max(candidate.box[2], candidate.box[3]) * scale
        mesh = _run_mesh(rgb, candidate.centre, side, rotation, models)
        if mesh is not None:
            return mesh
    return None


def _mesh_square(mesh: np.ndarray) -> tuple[Point, float, float]:
    """Centre, side and rotation of the square around a mesh, aligned with its
    eye line (outer eye corners), MESH_ROI_SCALE times its long side."""
    dx, dy = mesh[LEFT_EYE_CORNERS[0], :2] - mesh[RIGHT_EYE_CORNERS[0], :2]
    angle = math.atan2(dy, dx)
    cos, sin = math.cos(angle), math.sin(angle)
    # Into the face's frame (eye line horizontal), box there, centre back out.
    to_face = np.array([[cos, sin], [-sin, cos]])
    local = mesh[:, :2] @ to_face.T
    low, high = local.min(axis=0), local.max(axis=0)
    cx, cy = ((low + high) / 2) @ to_face
    side = float(max(high - low)) * MESH_ROI_SCALE
    return (float(cx), float(cy)), side, angle


def _run_mesh(
    rgb: np.ndarray, centre: Point, side: float, rotation: float, models: FaceModels
) -> np.ndarray | None:
    """Face Mesh on the square (centre, side in pixels), turned by `rotation`:
    the angle of the face's eye line, atan2(dy, dx) in image coordinates (y
    down), which the model undoes. Returns (468, 3) pixels or None."""
    from mediapipe.framework.formats import rect_pb2  # MediaPipe loads with the models

    height, width = rgb.shape[:2]
    roi = rect_pb2.NormalizedRect(
        x_center=centre[0] / width,
        y_center=centre[1] / height,
        width=side / width,
        height=side / height,
        rotation=rotation,
    )
    result = models.mesh.process({"image": rgb, "roi": roi})
    if result.landmarks is None:
        return None
    points = np.array([(p.x, p.y, p.z) for p in result.landmarks.landmark], dtype=np.float64)
    return points * np.array([width, height, width])
