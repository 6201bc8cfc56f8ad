"""Every limit the pipeline applies, each with the reason it exists.

`PipelineSettings` is plain data: the service's one settings object embeds it
(env prefix `AVATAR_PREP_PIPELINE__`), the command line builds it from flags.
Nothing here reads the environment by itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PipelineSettings(BaseModel):
    """Limits and sizes of one pipeline run. Frozen: pass it, never patch it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- image limits, checked from the header before any pixel is decoded ---
    max_bytes: int = Field(
        20_000_000, description="Largest accepted file; a 12 MP phone JPEG is 3-6 MB."
    )
    max_pixels: int = Field(
        50_000_000, description="Largest width*height; bounds decode memory (decompression bombs)."
    )
    min_side: int = Field(
        64, description="Smallest accepted short side in pixels; below it no face is usable."
    )

    # --- output ---
    output_size: int = Field(
        512, ge=256, le=1024, description="Side of the 1:1 crop; 4:3 and 3:4 scale from it."
    )
    jpeg_quality: int = Field(
        92, ge=50, le=100, description="Quality of stored renditions; 92 keeps skin texture."
    )

    # --- detection ---
    detect_side: int = Field(
        640, description="Long side of the reduced image the detectors see; their input is 192 px."
    )
    min_detection_score: float = Field(
        0.5, description="MediaPipe score below which a candidate is not a face."
    )

    # --- face rules ---
    max_faces_ratio: float = Field(
        0.45,
        description="A second face whose box height is at least this share of the main "
        "face's is 'comparable': two people, not a bystander.",
    )
    min_face_height_ratio: float = Field(
        0.09,
        description="Face box height / image height below this is a full-body or crowd "
        "shot (labelled accepts start near 11%, rejects end near 7%).",
    )
    max_upscale: float = Field(
        2.5,
        description="Most the face may be enlarged to fill the output; beyond it the "
        "avatar is visibly soft.",
    )
    max_yaw_degrees: float = Field(
        45.0, description="A head turned further cannot talk to the camera convincingly."
    )
    max_pitch_degrees: float = Field(
        40.0, description="Looking far up or down hides the mouth or eyes."
    )
    max_cut_off_ratio: float = Field(
        0.25, description="Largest share of the face box allowed outside the frame."
    )
    min_sharpness: float = Field(
        0.0, description="Laplacian variance of the face at 128 px; below it: too blurry."
    )
    min_brightness: float = Field(
        0.0, description="Mean luma (0-255) of the face; below it: too dark."
    )
    reject_blurry: bool = Field(
        False, description="Whether face.too_blurry rejects or only warns (decided from data)."
    )
    reject_dark: bool = Field(
        False, description="Whether face.too_dark rejects or only warns (decided from data)."
    )
