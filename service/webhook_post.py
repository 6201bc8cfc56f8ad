"""One webhook attempt over HTTP: the endpoint's secret, the Standard Webhooks
signature, and the POST itself, with what went wrong said in words.

The signature is Standard Webhooks' (so its verifier libraries work):
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed
with the endpoint's secret (`whsec_<base64 of 32 random bytes>`). The URL is
checked again at every attempt with the image URL rules of service/fetch.py
(public addresses only, connect to the checked address): a name that has come
to resolve to a private address since registration is refused then.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from pipeline.errors import AvatarPrepError
from service.fetch import check_url, connect, user_agent
from service.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# A receiver's answer is read this far (and dropped): enough to finish the exchange.
MAX_ANSWER_BYTES = 64 * 1024


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: `whsec_` + base64 of 32 bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 of HMAC-SHA256 over
    `{id}.{timestamp}.{body}`, keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def for_webhook(message: str) -> str:
    """service/fetch.py's messages name the image URL; the rules are the same here."""
    return message.replace("image URL", "webhook URL")


def post_event(url: str, secret: str, event_id: str, body: bytes, settings: Settings) -> str | None:
    """POST the event's JSON `body` to `url`, signed with `secret`, within
    `webhook_timeout_seconds`; None when the receiver answered 2xx, else what
    went wrong, as a delivery's `last_error` records it."""
    deadline = time.monotonic() + settings.webhook_timeout_seconds
    try:
        target = check_url(url, settings)
        conn = connect(target, settings, deadline)
    except AvatarPrepError as exc:
        return for_webhook(exc.message)
    timestamp = int(time.time())
    try:
        assert conn.sock is not None  # connected
        conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": user_agent("webhooks"),
                "webhook-id": event_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, event_id, timestamp, body),
            },
        )
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        return f"No answer within {settings.webhook_timeout_seconds:g} s."
    except OSError as exc:
        return f"The connection failed: {type(exc).__name__}."
    except Exception as exc:  # http.client's protocol errors: a receiver's bad answer
        return f"The answer was not HTTP: {type(exc).__name__}."
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return None
    if 300 <= response.status < 400:
        return f"HTTP {response.status}: redirects are not followed; register the final URL."
    return f"HTTP {response.status}."
