"""The one registry of error codes: every stable `code` a client, a log line or a
metric can see, declared once with what follows from it.

Each `Code` names the exception class it is raised with, its HTTP status as the
answer to a request, whether a retry may succeed, and an example message (the
OpenAPI example of the code). The error `type` follows from the status
(`TYPE_BY_STATUS`). The HTTP edge (`api/errors.py`), the OpenAPI document, the
metrics and docs/api.md's code table read from here; a test keeps the code table
and every code raised in the source tree in step with `CODES`.

The messages themselves are written where the error is raised (they carry its
figures); a rule's is in its module under `pipeline/rules/`, and a verdict's
example here is that rule's sentence for example figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pipeline.errors import AvatarPrepError, ImageError, Rejected
from pipeline.rules import NO_FACE_MESSAGE, Rule
from pipeline.rules.compression import COMPRESSION
from pipeline.rules.count import FACE_COUNT
from pipeline.rules.cover import EYES_VISIBLE, MOUTH_VISIBLE
from pipeline.rules.exposure import DARKNESS, HIGHLIGHTS
from pipeline.rules.expression import EYES_OPEN, MOUTH_CLOSED
from pipeline.rules.frame import FACE_IN_FRAME
from pipeline.rules.framing import FILL_4X3
from pipeline.rules.human import HUMAN
from pipeline.rules.photo import PHOTO
from pipeline.rules.pose import YAW
from pipeline.rules.sharpness import SHARPNESS
from pipeline.rules.size import FACE_SHARE
from pipeline.settings import PipelineSettings
from service.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    ObjectMissing,
    PermissionDenied,
    RateLimited,
    TransientError,
    Unavailable,
)
from service.queue import BrokerUnavailable

# The error `type` of each status: the family a client may switch on first.
TYPE_BY_STATUS: Final[dict[int, str]] = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limited",
    503: "at_capacity",
    500: "api_error",
}


@dataclass(frozen=True)
class Code:
    """One stable error code.

    `error` is the class it is raised with (None: made by the HTTP edge itself,
    such as an unknown route); `status` the HTTP status when it answers a request;
    `retryable`: the same request may succeed later (a limit, a dependency down; an
    image fetch that failed in a way worth retrying is raised as TransientError);
    `example`: the message as a client sees it, with example figures."""

    name: str
    error: type[AvatarPrepError] | None
    status: int
    example: str
    retryable: bool = False

    @property
    def type(self) -> str:
        return TYPE_BY_STATUS[self.status]

    @property
    def verdict(self) -> bool:
        """A verdict on the image (its bytes or its face): the client's to fix, and
        final for the avatar it was uploaded as."""
        return self.error is not None and issubclass(self.error, ImageError | Rejected)

    @property
    def final(self) -> bool:
        """Whether an avatar failed with this code stays failed when the same bytes
        are uploaded again: a verdict on the image that no retry can change. Every
        other failure (storage, database, a fetch, a crash) is processed again."""
        return self.verdict and not self.retryable


# The limits the examples are told against: the defaults, made once.
_DEFAULTS = PipelineSettings()

# A rule of each verdict code and the value of its example: the example is the
# rule's own sentence (`said`), and the code its own, so neither can drift.
RULE_EXAMPLES: tuple[tuple[Rule, float], ...] = (
    (COMPRESSION, 5),
    (PHOTO, 0.52),
    (FACE_COUNT, 2),
    (FACE_SHARE, 0.082),
    (YAW, 52.0),
    (FACE_IN_FRAME, 0.31),
    (HUMAN, 0.0),
    (SHARPNESS, 2.1),
    (DARKNESS, 18.0),
    (HIGHLIGHTS, 0.46),
    (EYES_OPEN, 0.04),
    (MOUTH_CLOSED, 0.52),
    (MOUTH_VISIBLE, 0.1),
    (EYES_VISIBLE, 0.23),
    (FILL_4X3, 0.31),
)


def said(rule: Rule, value: float, settings: PipelineSettings = _DEFAULTS) -> str:
    """What `rule` tells a person about a face measuring `value`, against the
    limit it fails in `settings` (its reject limit, else its warn limit)."""
    limit, severity = rule.limits.reject(settings), "reject"
    if limit is None:
        limit, severity = rule.limits.warn(settings), "warn"
    assert limit is not None, f"{rule.name} has no limit"
    return rule.result(value, limit, severity, settings.output_size).message


DECLARED = (
    # --- the request itself ---
    Code(
        "request.malformed_body",
        InvalidRequest,
        400,
        "The body is not valid JSON: Expecting value (char 0).",
    ),
    Code(
        "request.unsupported_content_type",
        InvalidRequest,
        415,
        "Content-Type text/plain is not accepted; send multipart/form-data or application/json.",
    ),
    Code(
        "request.invalid_field",
        InvalidRequest,
        422,
        "wait: Input should be less than or equal to 30 (got 31).",
    ),
    Code("request.invalid", InvalidRequest, 400, "The request is invalid."),
    Code("request.route_not_found", None, 404, "No route GET /v1/avatar; see /docs for the API."),
    Code(
        "request.method_not_allowed",
        None,
        405,
        "PUT is not allowed on /v1/avatars; allowed: GET.",
    ),
    Code(
        "metadata.too_large",
        InvalidRequest,
        400,
        "metadata is 20480 bytes as JSON; the limit is 16384.",
    ),
    Code(
        "metadata.not_object",
        InvalidRequest,
        400,
        'metadata must be a JSON object such as {"team": "blue"}; got an array.',
    ),
    # --- authentication and plans ---
    Code(
        "auth.missing_key",
        AuthenticationFailed,
        401,
        "No API key: send X-API-Key: <key> or Authorization: Bearer <key>.",
    ),
    Code("auth.invalid_key", AuthenticationFailed, 401, "The API key is unknown or revoked."),
    Code("plan.not_allowed", PermissionDenied, 403, "The free plan does not allow this operation."),
    Code(
        "plan.image_input_not_allowed",
        PermissionDenied,
        403,
        "The free plan may only start sessions with an avatar id (avat_...).",
    ),
    # --- cheap image checks at the edge, before any avatar exists ---
    Code(
        "image.missing",
        ImageError,
        400,
        "No image: send it in the multipart field `file`, or as `image` in a JSON body.",
    ),
    Code(
        "image.base64_invalid",
        ImageError,
        400,
        "image is not valid base64 (standard alphabet, padded to a multiple of 4).",
    ),
    Code(
        "image.url_invalid",
        ImageError,
        400,
        "image URL must be an http or https URL with a host.",
    ),
    Code(
        "image.url_forbidden",
        ImageError,
        400,
        "The URL resolves to 10.0.0.5, a private address; only public addresses are fetched.",
    ),
    Code(
        "image.too_large",
        ImageError,
        413,
        "The image is 25000000 bytes; the limit is 20000000 bytes.",
    ),
    Code(
        "image.too_many_pixels",
        ImageError,
        413,
        "The image is 20000 x 20000 pixels; the limit is 50000000 pixels.",
    ),
    Code(
        "image.unsupported_format",
        ImageError,
        415,
        "SVG is not supported; send JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF.",
    ),
    Code(
        "image.unreadable",
        ImageError,
        400,
        "The JPEG is truncated or corrupt and cannot be decoded.",
    ),
    # A URL is fetched before any avatar exists (service/avatars.py), so what the
    # fetch finds is a cheap check too. `image.fetch_failed` is retryable: raised as
    # TransientError (503) for DNS, refused connections, 5xx and 429; as ImageError
    # (400) for 4xx answers, broken redirects and bad certificates.
    Code(
        "image.fetch_failed",
        ImageError,
        400,
        "Fetching the image URL failed: HTTP 404.",
        retryable=True,
    ),
    Code("image.fetch_timeout", ImageError, 400, "Fetching the image URL took longer than 10 s."),
    # Decided from the header (pipeline.probe.probe), before any avatar exists.
    Code(
        "image.too_small",
        ImageError,
        400,
        "The image is 48 x 60 pixels; the short side must be 64 or more.",
    ),
    # --- verdicts on the content, known only after processing ---
    Code("face.none", Rejected, 422, NO_FACE_MESSAGE),
    *(Code(rule.code, Rejected, 422, said(rule, value)) for rule, value in RULE_EXAMPLES),
    # --- objects ---
    Code("avatar.not_found", NotFound, 404, "No avatar avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX."),
    Code(
        "avatar.not_ready",
        Conflict,
        409,
        "The avatar is processing; its images exist once it is ready.",
    ),
    Code("avatar.failed", Conflict, 409, "The avatar failed (face.none); it has no images."),
    Code(
        "avatar.in_use",
        Conflict,
        409,
        "The avatar avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX is in use by 1 started session(s); stop "
        "them first (POST /v1/sessions/{id}/stop), then delete it.",
    ),
    Code(
        "link.invalid",
        PermissionDenied,
        403,
        "The link is altered or has expired; ask GET /v1/avatars/{id}/links for a new one.",
    ),
    # --- sessions ---
    Code(
        "avatar_id.invalid",
        InvalidRequest,
        400,
        "avatar_id 'avatar_01JD3Z' is neither an avatar id nor an image: ids look like avat_ "
        "followed by 26 characters; or pass an https URL, a data URI or base64 image.",
    ),
    Code(
        "room.platform_invalid",
        InvalidRequest,
        400,
        "room.platform must be one of daily, livekit; got 'zoom'.",
    ),
    Code(
        "session.aspect_ratio_invalid",
        InvalidRequest,
        400,
        "aspect_ratio must be one of 1:1, 4:3, 3:4 (default 4:3); got '16:9'.",
    ),
    Code("session.not_found", NotFound, 404, "No session sess_01JD3Z9B2C4D5E6F7G8H9J0K1M."),
    # --- accounts and keys (the command line) ---
    Code(
        "account.name_invalid",
        InvalidRequest,
        400,
        "The account name must be 1 to 200 characters.",
    ),
    Code(
        "account.plan_invalid",
        InvalidRequest,
        400,
        "The plan must be one of free, paid; got 'gold'.",
    ),
    Code(
        "account.plan_mismatch",
        Conflict,
        409,
        "Account 'demo' is on the paid plan; creating a key never changes it. To move it to "
        "free: avatar-prep accounts set-plan demo free.",
    ),
    Code("account.not_found", NotFound, 404, "No account 'demo'."),
    Code("key.not_found", NotFound, 404, "No API key key_01JD3Z8G9YR3K2N5M6P7Q8W4TX."),
    # --- webhooks ---
    Code(
        "webhook.url_invalid",
        InvalidRequest,
        400,
        "The webhook URL must be an http or https URL with a host.",
    ),
    Code(
        "webhook.url_forbidden",
        InvalidRequest,
        400,
        "The webhook URL's host hooks.internal resolves to 10.0.0.5, a private address; "
        "only public internet addresses are called.",
    ),
    Code(
        "webhook.event_invalid",
        InvalidRequest,
        400,
        "events must be a non-empty list of avatar.ready, avatar.failed, session.started, "
        "session.ended.",
    ),
    Code(
        "webhook.too_many",
        InvalidRequest,
        400,
        "The account has 16 webhook endpoints, the most allowed; delete one first.",
    ),
    Code(
        "webhook.not_found", NotFound, 404, "No webhook endpoint whep_01JD3Z9B2C4D5E6F7G8H9J0K1M."
    ),
    # --- idempotency ---
    Code(
        "idempotency.key_invalid",
        InvalidRequest,
        400,
        "Idempotency-Key must be 1 to 255 printable ASCII characters (a UUID is a good key).",
    ),
    Code(
        "idempotency.key_reused",
        Conflict,
        409,
        "This Idempotency-Key was used with another request (a different path or body) in the "
        "last 24 h; use a new key for a new request.",
    ),
    Code(
        "idempotency.in_progress",
        Conflict,
        409,
        "The first request with this Idempotency-Key is still running; retry after 1 s.",
    ),
    # --- capacity and dependencies ---
    Code(
        "rate_limited",
        RateLimited,
        429,
        "Too many requests for this key; retry after 2 s.",
        retryable=True,
    ),
    Code(
        "at_capacity",
        Unavailable,
        503,
        "The work queue is full; retry after 5 s.",
        retryable=True,
    ),
    Code(
        "dependency.unavailable",
        TransientError,
        503,
        "A dependency is unreachable; retry shortly.",
        retryable=True,
    ),
    Code(
        "database.unavailable",
        TransientError,
        503,
        "The database is unreachable; retry shortly.",
        retryable=True,
    ),
    Code(
        "database.conflict",
        TransientError,
        503,
        "The same image was being uploaded and deleted at once; retry.",
        retryable=True,
    ),
    Code(
        "broker.unavailable",
        BrokerUnavailable,
        503,
        "The broker refused the message (connection refused); the sweeper sends it again.",
        retryable=True,
    ),
    Code(
        "storage.unavailable",
        TransientError,
        503,
        "Storage is unreachable; retry shortly.",
        retryable=True,
    ),
    Code(
        "service.not_ready",
        None,
        503,
        "Not ready: broker unreachable.",
        retryable=True,
    ),
    Code(
        "storage.object_missing",
        ObjectMissing,
        500,
        "The stored original of this avatar is missing.",
    ),
    Code(
        "processing.crashed",
        AvatarPrepError,
        500,
        "Processing this image stopped the worker 10 times; it was given up.",
    ),
    Code(
        "api_error",
        AvatarPrepError,
        500,
        "Internal error; quote the request id when reporting it.",
    ),
)

CODES: Final[dict[str, Code]] = {code.name: code for code in DECLARED}

# Status for a code missing from CODES, by the class that raised it (most specific first).
CLASS_STATUS: Final[tuple[tuple[type[AvatarPrepError], int], ...]] = (
    (Rejected, 422),
    (ImageError, 400),
    (InvalidRequest, 400),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Unavailable, 503),
    (TransientError, 503),
)


def status_for(error: AvatarPrepError) -> int:
    """The HTTP status of an error raised while answering a request. A
    TransientError is 503 whatever its code (a retry may work: `image.fetch_failed`
    when a URL's host does not resolve now); otherwise the code's status, or for an
    unregistered code its class's."""
    if isinstance(error, TransientError):
        return 503
    if error.code in CODES:
        return CODES[error.code].status
    for cls, status in CLASS_STATUS:
        if isinstance(error, cls):
            return status
    return 500


def status_for_failed_avatar(code: str) -> int:
    """The status of an upload whose avatar failed with `code` while the client waited.

    The upload itself was accepted, so a verdict on its content (every image and
    face code, fetch failures included) is 422, whatever status the same code has
    as a cheap check at the edge; a dependency that stayed down through every retry
    is our failure (500), as is an unknown code."""
    entry = CODES.get(code)
    if entry is None:
        return 500
    if entry.verdict:
        return 422
    return 500 if entry.retryable else entry.status


def failure_is_final(code: str | None) -> bool:
    """Whether a failed avatar's error `code` is final (`Code.final`); an unknown or
    missing code is not, so its bytes are processed again when uploaded again."""
    entry = CODES.get(code or "")
    return entry is not None and entry.final


def failed_type(code: str) -> str:
    """The error `type` a failed avatar carries: the type of its status above."""
    return TYPE_BY_STATUS[status_for_failed_avatar(code)]


def metric_label(code: str | None) -> str:
    """`code` as a metric label: a registered code, `unknown` for anything else, so
    the number of series stays bounded."""
    return code if code is not None and code in CODES else "unknown"
