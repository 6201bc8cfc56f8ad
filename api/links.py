"""Images a web page can show: signed links to an avatar's renditions and its
overlay (`GET /v1/avatars/{id}/links`), the overlay itself for a key holder, and
the signed route those links point at, which needs no key (the signature is the
permission, for one image, until it expires)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AccountDep, ServicesDep
from api.errors import KEYED_ROUTE_CODES, error_responses
from api.schemas import AVATAR_ID_EXAMPLE, Timestamp
from pipeline.aspect import DEFAULT_ASPECT_RATIO, AspectRatio
from service.errors import PermissionDenied
from service.previews import OVERLAY
from service.public import rfc3339

router = APIRouter(tags=["avatars"])
signed_router = APIRouter(tags=["avatars"])

AvatarIdPath = Annotated[str, Path(description="The avatar's id.", examples=[AVATAR_ID_EXAMPLE])]
_JPEG = {
    "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    "description": "A JPEG.",
}
# What a signed link may name: a rendition by its slug, or the overlay.
SIGNED_NAMES = "^(" + "|".join([*(r.slug for r in AspectRatio), OVERLAY]) + ")$"
# A signed image is private to whoever holds the link, and the link expires.
_PRIVATE_CACHE = {"Cache-Control": "private, max-age=300"}


class ImageLinks(BaseModel):
    """Signed URLs for `<img src>`: no key needed, valid until `expires_at`."""

    object: str = Field("image_links", examples=["image_links"])
    avatar_id: str = Field(examples=[AVATAR_ID_EXAMPLE])
    expires_at: Timestamp = Field(
        description="RFC 3339 UTC.", examples=["2025-01-07T10:20:30.000Z"]
    )
    images: dict[str, str] = Field(
        description="Rendition URL by aspect ratio; empty until the avatar is ready. Relative "
        "to this API, or absolute when storage is S3.",
        examples=[
            {
                DEFAULT_ASPECT_RATIO.value: f"/signed/{AVATAR_ID_EXAMPLE}/"
                f"{DEFAULT_ASPECT_RATIO.slug}?expires=1736245230&signature=9f…"
            }
        ],
    )
    overlay: str | None = Field(
        description="The photo with the face box, landmarks, other faces, each rendition's "
        "crop and the verdict drawn on it; null until the photo was judged.",
        examples=[f"/signed/{AVATAR_ID_EXAMPLE}/overlay?expires=1736245230&signature=9f…"],
    )


@router.get(
    "/v1/avatars/{avatar_id}/links",
    summary="Signed image links for a web page",
    response_model=ImageLinks,
    responses=error_responses("avatar.not_found", *KEYED_ROUTE_CODES, "storage.unavailable"),
)
async def get_avatar_links(
    avatar_id: AvatarIdPath, account: AccountDep, services: ServicesDep
) -> ImageLinks:
    links = await run_in_threadpool(services.previews.links, account.id, avatar_id)
    return ImageLinks(
        avatar_id=links.avatar_id,
        expires_at=rfc3339(links.expires_at),
        images=links.images,
        overlay=links.overlay,
    )


@router.get(
    "/v1/avatars/{avatar_id}/overlay",
    summary="The photo with what the pipeline saw drawn on it",
    description="Face box, landmarks, other candidate faces, each rendition's crop outline "
    "and the verdict, on the photo (at most 1024 px on its long side).",
    response_class=Response,
    responses={
        200: _JPEG,
        **error_responses(
            "avatar.not_found", "avatar.not_ready", *KEYED_ROUTE_CODES, "storage.unavailable"
        ),
    },
)
async def get_avatar_overlay(
    avatar_id: AvatarIdPath, account: AccountDep, services: ServicesDep
) -> Response:
    await run_in_threadpool(services.previews.links, account.id, avatar_id)  # may it see it?
    data = await run_in_threadpool(services.previews.image, avatar_id, "overlay")
    return Response(data, media_type="image/jpeg", headers=_PRIVATE_CACHE)


@signed_router.get(
    "/signed/{avatar_id}/{name}",
    summary="An image by signed link (no key)",
    description="Where `links` point: `name` is a rendition's slug (`1x1`) or `overlay`. Outside "
    "/v1 like a presigned storage URL: the link, not a key, is the permission.",
    response_class=Response,
    responses={
        200: _JPEG,
        **error_responses(
            "request.invalid_field",
            "link.invalid",
            "avatar.not_found",
            "avatar.not_ready",
            "storage.unavailable",
            "api_error",
        ),
    },
)
async def signed_image(
    avatar_id: AvatarIdPath,
    name: Annotated[str, Path(pattern=SIGNED_NAMES, examples=[DEFAULT_ASPECT_RATIO.slug])],
    services: ServicesDep,
    expires: Annotated[int, Query(description="Unix seconds the link ends at.")],
    signature: Annotated[
        str, Query(pattern="^[0-9a-f]{64}$", description="The link's HMAC-SHA256, hex.")
    ],
) -> Response:
    if not services.previews.verify(avatar_id, name, expires, signature):
        raise PermissionDenied(
            "The link is altered or has expired; ask GET /v1/avatars/{id}/links for a new one.",
            code="link.invalid",
        )
    data = await run_in_threadpool(services.previews.image, avatar_id, name)
    return Response(data, media_type="image/jpeg", headers=_PRIVATE_CACHE)
