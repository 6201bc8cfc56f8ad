"""Reading an upload-face request: the body under a hard byte cap, then the image
in one of its three forms (multipart file, URL, base64 / data URI).

Only cheap work happens here, on the event loop: no image is decoded. The cap is
checked against `Content-Length` before a byte is read, and counted while the
body streams, so an oversized body is refused after at most one chunk past the
cap, never buffered whole. Multipart files spool to disk past 1 MB (Starlette).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.schemas import MAX_NAME_LENGTH, UploadFaceJson
from pipeline.errors import ImageError
from service.avatars import ImageInput
from service.errors import InvalidRequest

# Room for everything in a body besides the image: multipart headers and boundaries,
# the other fields, a data URI prefix, metadata.
BODY_OVERHEAD_BYTES = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
FORM_FIELDS = ("file", "name", "user_exclusive", "metadata")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),", re.IGNORECASE)
_WHITESPACE = b" \t\r\n\v\f"
# A URL written without its scheme ("example.com/photo.jpg"): base64 has no ".",
# so a host-like start is never an image.
_SCHEMELESS_URL = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:[/?#]\S*)?$")
# Shaped like an id (a UUID, hex, a ULID, `avatar_01...`) and too short for an
# image (the smallest usable one is a few hundred bytes).
_ID_LIKE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def check_not_an_id(text: str, field: str) -> None:
    """A session's `avatar_id` that is shaped like an id but is not `avat_...` is a
    mistyped id, not bad base64: 400 `avatar_id.invalid`, naming the id form."""
    if _ID_LIKE.match(text):
        raise InvalidRequest(
            f"{field} {text!r} is neither an avatar id nor an image: ids look like avat_ "
            "followed by 26 characters; or pass an https URL, a data URI or base64 image.",
            code="avatar_id.invalid",
            param=field,
        )


@dataclass(frozen=True)
class Upload:
    """One parsed upload, ready for `AvatarService.create`."""

    image: ImageInput
    name: str | None
    user_exclusive: bool
    metadata: dict[str, Any]


def _invalid_field(message: str, *, param: str) -> InvalidRequest:
    """A field that breaks its schema: 422, as FastAPI's own validation errors."""
    return InvalidRequest(message, code="request.invalid_field", param=param)


def body_limits(max_image_bytes: int) -> tuple[int, int]:
    """(multipart cap, JSON cap) in bytes for images of at most `max_image_bytes`.
    JSON carries the image as base64, 4 characters per 3 bytes."""
    base64_len = 4 * -(-max_image_bytes // 3)
    return max_image_bytes + BODY_OVERHEAD_BYTES, base64_len + BODY_OVERHEAD_BYTES


def _too_large(size: int | str, limit: int) -> ImageError:
    return ImageError(
        f"The request body is {size} bytes; the limit is {limit} bytes "
        "(the image limit plus room for the form).",
        code="image.too_large",
        param="image",
    )


async def capped_body(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks; raises ImageError(image.too_large) as soon as it is known to
    exceed `limit`: from Content-Length before reading, else while counting."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(declared, limit)
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _too_large(f"more than {limit}", limit)
        yield chunk


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes."""
    chunks = [chunk async for chunk in capped_body(request, limit)]
    return b"".join(chunks)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_upload(request: Request, max_image_bytes: int) -> Upload:
    """Parse an upload-face body. Raises ImageError (image.missing, image.too_large,
    image.base64_invalid, image.unsupported_format) or InvalidRequest
    (request.malformed_body, request.unsupported_content_type, request.invalid_field,
    metadata.not_object, metadata.too_large); never creates anything."""
    form_cap, json_cap = body_limits(max_image_bytes)
    media_type = media_type_of(request)
    if media_type == "multipart/form-data":
        return await _read_multipart(request, form_cap)
    if media_type == "application/json" or media_type.endswith("+json"):
        return _parse_json(await read_capped(request, json_cap))
    if not await _has_body(request, json_cap):
        raise ImageError(
            "No image: send multipart/form-data with the image in field `file`, or JSON "
            '{"image": "<https URL | data URI | base64>"}.',
            code="image.missing",
            param="image",
        )
    raise InvalidRequest(
        f"Content-Type {media_type or '(none)'} is not accepted; send multipart/form-data "
        "(image in field `file`) or application/json.",
        code="request.unsupported_content_type",
    )


async def _has_body(request: Request, limit: int) -> bool:
    async for chunk in capped_body(request, limit):
        if chunk:
            return True
    return False


async def _read_multipart(request: Request, limit: int) -> Upload:
    parser = MultiPartParser(
        request.headers,
        capped_body(request, limit),
        max_files=1,
        # A few more than the form has, so an unknown field is named, not "too many".
        max_fields=2 * len(FORM_FIELDS),
        max_part_size=BODY_OVERHEAD_BYTES,
    )
    # The file stays in memory up to the body cap, as a JSON body does: starlette
    # would move a file over 1 MB to a temporary file, written and read back chunk
    # by chunk through worker threads, for bytes that are all read at once below.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(
            f"The multipart body is malformed: {exc.message}",
            code="request.malformed_body",
        ) from exc
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise _missing_file(list(form.keys()), text_field=file is not None)
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:
            raise _invalid_field(
                f"{unknown[0]}: unknown field; the fields are {', '.join(FORM_FIELDS)}.",
                param=unknown[0],
            )
        data = await file.read()
        if not data:
            raise ImageError(
                "The file in field `file` is empty.", code="image.missing", param="file"
            )
        name = _form_text(form.get("name"), "name")
        exclusive_text = _form_text(form.get("user_exclusive"), "user_exclusive")
        metadata_text = _form_text(form.get("metadata"), "metadata")
    finally:
        await form.close()
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise _invalid_field(
            f"name: at most {MAX_NAME_LENGTH} characters (got {len(name)}).", param="name"
        )
    return Upload(
        image=ImageInput(kind="file", data=data, filename=file.filename),
        name=name,
        user_exclusive=_form_bool(exclusive_text),
        metadata=_form_metadata(metadata_text),
    )


def _missing_file(fields: list[str], *, text_field: bool) -> ImageError:
    if text_field:
        message = (
            "Field `file` came as text; send the image as a file part (curl -F file=@photo.jpg)."
        )
    else:
        got = ", ".join(sorted(set(fields))) or "none"
        message = f"No image in multipart field `file` (fields received: {got})."
    return ImageError(message, code="image.missing", param="file")


def _form_text(value: str | UploadFile | None, field: str) -> str | None:
    if isinstance(value, UploadFile):
        raise _invalid_field(f"{field}: must be a text field, not a file.", param=field)
    return value


def _form_bool(text: str | None) -> bool:
    if text is None:
        return True
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise _invalid_field(
            f"user_exclusive: must be 'true' or 'false' (got {text[:40]!r}).",
            param="user_exclusive",
        )
    return lowered == "true"


def _form_metadata(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            f'metadata must be a JSON object as text, such as {{"team": "blue"}}; it is '
            f"not valid JSON ({exc}).",
            code="metadata.not_object",
            param="metadata",
        ) from exc
    return check_metadata(value)


def check_metadata(value: Any) -> dict[str, Any]:
    """`metadata` must be a JSON object (400 metadata.not_object) of at most
    MAX_METADATA_BYTES as compact JSON (400 metadata.too_large): it is stored in the
    registry row and returned with every read."""
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        raise InvalidRequest(
            f'metadata must be a JSON object such as {{"team": "blue"}}; got {kind}.',
            code="metadata.not_object",
            param="metadata",
        )
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}.",
            code="metadata.too_large",
            param="metadata",
        )
    return value


def json_object(body: bytes, example: str) -> dict[str, Any]:
    """The body as a JSON object; 400 request.malformed_body when it is not JSON (not
    UTF-8, broken, nested too deep for the parser) or not an object like `example`."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise InvalidRequest(
            f"The body is not valid JSON: {exc}.", code="request.malformed_body"
        ) from exc
    if not isinstance(doc, dict):
        raise InvalidRequest(
            f"The body must be a JSON object such as {example}.", code="request.malformed_body"
        )
    return doc


def _parse_json(body: bytes) -> Upload:
    if not body.strip():
        raise ImageError(
            'No image: the JSON body is empty; send {"image": "<https URL | data URI | base64>"}.',
            code="image.missing",
            param="image",
        )
    doc = json_object(body, '{"image": "https://..."}')
    if doc.get("image") is None:
        fields = ", ".join(sorted(doc)) or "none"
        raise ImageError(
            f"No image: put it in the field `image` (fields received: {fields}).",
            code="image.missing",
            param="image",
        )
    if "metadata" in doc:
        check_metadata(doc["metadata"])
    try:
        parsed = UploadFaceJson.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message += f"; the fields are {', '.join(UploadFaceJson.model_fields)}"
        raise _invalid_field(f"{where}: {message}.", param=where) from exc
    return Upload(
        image=parse_image_text(parsed.image),
        name=parsed.name,
        user_exclusive=parsed.user_exclusive,
        metadata=parsed.metadata,
    )


def parse_image_text(text: str, field: str = "image") -> ImageInput:
    """Which of the three forms `text` is: a data URI whose media type is image/*, or
    bare standard base64 (both decoded here), or else a URL (anything that starts
    with a scheme, as base64 has no colon). The service checks the URL's form and
    addresses (`image.url_invalid`, `image.url_forbidden`) when the avatar is made.

    `field` is the request's own name for the text (`image`, or a session's
    `avatar_id`), used in `param` and the message. Errors: `image.missing` (empty),
    `image.url_invalid` (a URL without its scheme), `image.base64_invalid`."""
    text = text.strip()
    if not text:
        raise ImageError(
            f"{field} is empty; put the photo in it as an https URL, a data URI or base64.",
            code="image.missing",
            param=field,
        )
    if text[:5].lower() == "data:":
        return ImageInput(kind="base64", data=_decode_data_uri(text, field))
    if _SCHEME.match(text):
        return ImageInput(kind="url", url=text)
    if _SCHEMELESS_URL.match(text):
        raise ImageError(
            f"{field} looks like a URL without its scheme; add https:// (https://{text[:80]}).",
            code="image.url_invalid",
            param=field,
        )
    return ImageInput(kind="base64", data=_decode_base64(text.encode("ascii", "replace"), field))


def _decode_data_uri(uri: str, field: str) -> bytes:
    match = _DATA_URI.match(uri)
    if match is None:
        raise ImageError(
            f"The data URI in {field} is malformed; the form is data:image/jpeg;base64,<data>.",
            code="image.base64_invalid",
            param=field,
        )
    media_type = match["type"].strip().lower()
    if not media_type.startswith("image/"):
        raise ImageError(
            f"The data URI declares {media_type or 'no media type'}, not an image; send "
            "data:image/jpeg;base64,... (or png, webp, heic, ...).",
            code="image.unsupported_format",
            param=field,
        )
    if "base64" not in [p.strip().lower() for p in match["params"].split(";")]:
        raise ImageError(
            f"The data URI in {field} is not base64-encoded; the form is "
            "data:image/jpeg;base64,<data>.",
            code="image.base64_invalid",
            param=field,
        )
    return _decode_base64(uri[match.end() :].encode("ascii", "replace"), field)


def _decode_base64(text: bytes, field: str) -> bytes:
    """Strict standard base64 (line breaks allowed, as MIME encoders wrap at 76).
    C-speed throughout (translate, a2b_base64): a 20 MB image is 27 MB of text, and
    this runs on the event loop."""
    compact = text.translate(None, _WHITESPACE)
    try:
        # a2b_base64 tolerates too much padding ("QUJD=" decodes); strict is exact.
        if len(compact) % 4 or compact.endswith(b"==="):
            raise binascii.Error("length or padding")
        data = binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error as exc:
        raise ImageError(
            f"{field} is neither an http(s) URL, a data URI nor valid base64 (standard "
            "alphabet A-Z a-z 0-9 + /, padded with = to a multiple of 4).",
            code="image.base64_invalid",
            param=field,
        ) from exc
    if not data:
        raise ImageError(f"{field} decodes to 0 bytes.", code="image.missing", param=field)
    return data
