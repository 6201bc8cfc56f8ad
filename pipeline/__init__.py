"""avatar-prep's pipeline: image bytes in, an aligned avatar or a precise rejection out.

    models = FaceModels.load()              # once per process
    result = prepare(data, models, settings)  # Prepared, or raises ImageError / Rejected

It knows nothing of HTTP, queues, databases or storage (see docs/architecture.md).
"""

from pipeline.errors import AvatarPrepError, ImageError, Rejected
from pipeline.models import FaceModels
from pipeline.prepare import prepare
from pipeline.record import Prepared
from pipeline.settings import PipelineSettings

__all__ = [
    "AvatarPrepError",
    "FaceModels",
    "ImageError",
    "PipelineSettings",
    "Prepared",
    "Rejected",
    "prepare",
]
