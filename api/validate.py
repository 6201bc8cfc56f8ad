"""`POST /v1/avatars/validate`: the verdict on a photo without making an avatar
(service/validation.py runs the pipeline in this process and stores nothing)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AccountDep, ServicesDep, SettingsDep
from api.errors import IMAGE_CODES, KEYED_ROUTE_CODES, error_responses
from api.schemas import Check, CheckWarning, ErrorObject, Face
from api.uploads import read_upload

router = APIRouter(prefix="/v1/avatars", tags=["avatars"])


class RenditionFraming(BaseModel):
    """How a rendition would be cut: its size, the similarity from the photo to it,
    and the share of it that lies outside the photo (filled)."""

    width: int = Field(examples=[640])
    height: int = Field(examples=[480])
    content_type: str = Field(examples=["image/jpeg"])
    transform: list[list[float]] = Field(
        description="2x3 similarity mapping upright source (x, y, 1) to output pixels.",
        examples=[[[0.41, 0.02, -120.5], [-0.02, 0.41, -30.2]]],
    )
    filled_ratio: float = Field(examples=[0.0])


class ValidationSource(BaseModel):
    sha256: str
    format: str = Field(examples=["jpeg"])
    width: int = Field(description="Upright width in pixels.", examples=[4032])
    height: int = Field(description="Upright height in pixels.", examples=[3024])
    bytes: int = Field(examples=[2480123])


class Validation(BaseModel):
    """The verdict on one photo, nothing stored. `verdict` is what a form needs;
    the rest says why."""

    verdict: Literal["accept", "reject"] = Field(examples=["accept"])
    error: ErrorObject | None = Field(
        description="For a rejection: the code and message an upload would fail with."
    )
    checks: list[Check] = Field(description="Every rule measured.")
    warnings: list[CheckWarning] = Field(description="Checks that failed without rejecting.")
    source: ValidationSource | None = Field(description="The decoded photo.")
    face: Face | None = Field(description="The face judged, when one was found.")
    candidates: list[list[float]] = Field(
        description="A rejection's faces found, [x, y, width, height] each, the judged one first."
    )
    images: dict[str, RenditionFraming] | None = Field(
        description="An accepted photo's renditions as they would be cut, by aspect ratio."
    )


@router.post(
    "/validate",
    summary="Check a photo without making an avatar",
    description=(
        "The same body as upload-face (multipart `file`, or JSON `image` as URL, data URI "
        "or base64) and the same pipeline, run now; nothing is stored. `200` with "
        "`verdict` `accept` or `reject` whenever the photo could be judged; bytes that are "
        "no usable image fail as upload's cheap checks do. One validation runs at a time "
        "per API process (about 0.1-1.5 s each); past a short wait, `503 at_capacity`."
    ),
    response_model=Validation,
    responses=error_responses(
        *IMAGE_CODES,
        "request.malformed_body",
        "request.unsupported_content_type",
        "request.invalid_field",
        "at_capacity",
        *KEYED_ROUTE_CODES,
    ),
)
async def validate_photo(
    request: Request, account: AccountDep, services: ServicesDep, settings: SettingsDep
) -> dict[str, Any]:
    upload = await read_upload(request, settings.pipeline.max_bytes)
    record: dict[str, Any] = await run_in_threadpool(services.validator.validate, upload.image)
    return record
