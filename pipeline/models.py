"""The MediaPipe graphs one process uses, made once (they take ~100 ms to build)
and reused for every image: in a lifecycle hook (FastAPI lifespan, Celery
`worker_process_init`, a pool initializer), never at import time or per image.

A `FaceModels` is not thread-safe: each graph processes one image at a time.
Everything runs offline on the models inside the mediapipe 0.10.21 wheel.

MediaPipe itself is imported by `load` (about 1.5 s), not with this module, so
a process that never loads the models (the command line starting, the API)
never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediapipe.python.solution_base import SolutionBase

# The detectors' own score floor. Kept below any sensible
# `PipelineSettings.min_detection_score`, which is applied afterwards, so the
# models do not depend on settings and one load serves every settings object.
GRAPH_MIN_SCORE = 0.3

# Face Mesh normally finds its face with a detector of its own. This graph runs
# only its landmark subgraph on a region of interest we give it (from our
# detections), which is what MediaPipe's tracking mode does between frames. The
# subgraph emits landmarks only when its face-presence score passes a threshold,
# so it doubles as a second opinion on every detection.
_MESH_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""

# MediaPipe's BlazePose person detector as a graph of its own (the pose
# solution tracks one person and needs the landmark model too).
_PERSON_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""


@dataclass(eq=False)
class FaceModels:
    """Two face detectors (BlazeFace full range, for faces down to ~2% of the
    frame, and short range, for close-ups), the 468-point Face Mesh landmark
    model driven by a region of interest (`mesh.process({"image", "roi"})`),
    and BlazePose's person detector (`person()`, see `pipeline.people`)."""

    full_range: Any  # mp.solutions.face_detection.FaceDetection, model_selection=1
    short_range: Any  # the same, model_selection=0
    mesh: SolutionBase
    _person: SolutionBase | None = field(default=None, repr=False)

    @classmethod
    def load(cls) -> FaceModels:
        import mediapipe as mp

        detection = mp.solutions.face_detection
        return cls(
            full_range=detection.FaceDetection(
                model_selection=1, min_detection_confidence=GRAPH_MIN_SCORE
            ),
            short_range=detection.FaceDetection(
                model_selection=0, min_detection_confidence=GRAPH_MIN_SCORE
            ),
            mesh=_graph(_MESH_GRAPH, "landmarks", {"with_attention": False}),
        )

    def person(self) -> SolutionBase:
        """The pose model's person detector (`person().process(rgb).detections`),
        made on first use: only a photo in which no face was found, or whose face
        the human second look is unsure of, needs it (see `pipeline.people`), and
        a graph that is never run still costs a process about 40 MB at the peak
        of a 50 MP photo (glibc's arenas for its threads)."""
        if self._person is None:
            self._person = _graph(_PERSON_GRAPH, "detections")
        return self._person

    def close(self) -> None:
        """Release the graphs; the object is unusable afterwards."""
        for graph in (self.full_range, self.short_range, self.mesh, self._person):
            if graph is not None:
                graph.close()

    def __enter__(self) -> FaceModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def version() -> str:
        """The MediaPipe release whose bundled models these are."""
        import mediapipe as mp  # already imported by `load`: a dictionary lookup

        return str(mp.__version__)


def _graph(text: str, output: str, side_inputs: dict[str, Any] | None = None) -> SolutionBase:
    """A MediaPipe graph from its text config, with one output stream."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.python.solution_base import SolutionBase

    config = text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
    return SolutionBase(graph_config=config, side_inputs=side_inputs, outputs=[output])
