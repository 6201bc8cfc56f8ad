"""Fetching image URLs without becoming a proxy into the private network (SSRF).

The rules: `http`/`https` only; the host is resolved once and every address it
resolves to must be public (not loopback, private, link-local, multicast,
reserved, unspecified, nor an IPv4-mapped or 6to4 form of one); the connection
goes to the address that was checked (no second DNS lookup, so a rebinding DNS
server gains nothing), with SNI and the certificate check for the URL's host
name; every redirect (at most `fetch_max_redirects`) is checked the same way;
connect time-out 3 s, the whole download 10 s; the body is streamed and cut at
the pipeline's byte cap.

Outcomes: the bytes; `ImageError` for verdicts on the URL (`image.url_invalid`,
`image.url_forbidden`, `image.fetch_timeout`, `image.too_large`, and
`image.fetch_failed` for 4xx answers and broken redirects); `TransientError`
with code `image.fetch_failed` for failures a retry may fix (DNS, refused or
reset connections, 5xx, 429).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from pipeline.errors import ImageError
from pipeline.version import package_version
from service.errors import TransientError
from service.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_REDIRECTS = {301, 302, 303, 307, 308}
_RETRYABLE = {429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


def user_agent(purpose: str) -> str:
    """The User-Agent of our outbound requests: this build's name and version,
    then what the request is for ("image fetch", "webhooks")."""
    return f"avatar-prep/{package_version()} ({purpose})"


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`addresses`, all public) and what to ask for."""

    url: str
    scheme: str  # http | https
    host: str  # IDNA-encoded host name or IP literal, for SNI, the certificate and Host
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]


def forbidden_reason(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why an address must not be fetched from ("a private address", ...), or None
    when it is public. IPv4-mapped (::ffff:a.b.c.d) and 6to4 (2002::/16) addresses
    are judged by the IPv4 address they carry."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return forbidden_reason(ip.ipv4_mapped, allow_loopback=allow_loopback)
        if ip.sixtofour is not None:
            inner = forbidden_reason(ip.sixtofour, allow_loopback=False)
            if inner is not None:
                return inner
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def parse_url(url: str) -> tuple[str, str, int, str]:
    """Check the URL's form: (scheme, IDNA host, port, path). `image.url_invalid`
    when it is not an http(s) URL with a host, or carries credentials."""
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise _invalid(f"The image URL must be at most {MAX_URL_LENGTH} characters, no spaces.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid("The image URL must start with http:// or https://.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise _invalid("The image URL has an invalid port.") from exc
    if not parts.hostname:
        raise _invalid("The image URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise _invalid("The image URL must not contain a user name or password.")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _invalid("The image URL's host name is not a valid domain name.") from exc
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, path


def check_url(url: str, settings: Settings) -> Target:
    """Parse the URL, resolve its host once and check every address. Raises
    ImageError (`image.url_invalid`, `image.url_forbidden`) or TransientError
    (`image.fetch_failed` when the name does not resolve now)."""
    scheme, host, port, path = parse_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(
            f"The image URL's host {host} could not be resolved.",
            code="image.fetch_failed",
            param="image",
        ) from exc
    # Keep resolver order (it prefers what is reachable), without repeats.
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = forbidden_reason(
            ipaddress.ip_address(address.split("%", 1)[0]),
            allow_loopback=settings.allow_loopback_urls,
        )
        if reason is not None:
            raise ImageError(
                f"The image URL's host {host} resolves to {address}, {reason}; "
                "only public internet addresses are fetched.",
                code="image.url_forbidden",
                param="image",
            )
    return Target(url=url, scheme=scheme, host=host, port=port, path=path, addresses=addresses)


def fetch(url: str, settings: Settings) -> bytes:
    """The body of `url`, at most `settings.pipeline.max_bytes`, following at most
    `settings.fetch_max_redirects` redirects, all within the total time-out."""
    deadline = time.monotonic() + settings.fetch_total_timeout_seconds
    for _ in range(settings.fetch_max_redirects + 1):
        target = check_url(url, settings)
        location = _get(target, settings, deadline)
        if isinstance(location, bytes):
            return location
        url = location
    raise ImageError(
        f"The image URL redirected more than {settings.fetch_max_redirects} times.",
        code="image.fetch_failed",
        param="image",
    )


def _get(target: Target, settings: Settings, deadline: float) -> bytes | str:
    """One GET: the body, or the absolute URL of a redirect."""
    conn = _connect(target, settings, deadline)
    assert conn.stream is not None  # connected
    try:
        conn.stream.settimeout(_remaining(deadline))
        conn.request(
            "GET",
            target.path,
            headers={"User-Agent": user_agent("image fetch"), "Accept": "image/*"},
        )
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise _failed(f"HTTP {response.status} redirect without a Location header.")
            return urljoin(target.url, location)
        if response.status in _RETRYABLE:
            raise TransientError(
                f"Fetching the image URL failed: HTTP {response.status}.",
                code="image.fetch_failed",
                param="image",
            )
        if response.status != 200:
            raise _failed(f"Fetching the image URL failed: HTTP {response.status}.")
        return _read_body(conn.stream, response, settings, deadline)
    except TimeoutError as exc:
        raise _timeout(settings) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(
            f"Fetching the image URL failed: {type(exc).__name__}.",
            code="image.fetch_failed",
            param="image",
        ) from exc
    finally:
        conn.close()


def connect(target: Target, settings: Settings, deadline: float) -> http.client.HTTPConnection:
    """An open connection to one of `target`'s checked addresses (never a re-resolved
    one), for requests other than the image GET that must keep to the same rules
    (webhook deliveries). Raises as `fetch` does when no address answers."""
    return _connect(target, settings, deadline)


def _connect(target: Target, settings: Settings, deadline: float) -> _PinnedConnection:
    """A connection to the first checked address that answers, never to a re-resolved one."""
    last: OSError | None = None
    for address in target.addresses:
        remaining = _remaining(deadline)
        if remaining <= 0:
            raise _timeout(settings)
        conn = _PinnedConnection(
            target, address, min(settings.fetch_connect_timeout_seconds, remaining)
        )
        try:
            conn.connect()
            return conn
        except TimeoutError as exc:
            last = exc
        except ssl.SSLError as exc:  # a bad certificate will not fix itself
            raise _failed(f"The image URL's TLS certificate is not valid: {exc.reason}.") from exc
        except OSError as exc:
            last = exc
    if isinstance(last, TimeoutError):
        raise _timeout(settings) from last
    raise TransientError(
        f"Could not connect to the image URL's host {target.host}.",
        code="image.fetch_failed",
        param="image",
    ) from last


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to a fixed IP address that still speaks to the URL's
    host: Host header, and for https the SNI name and certificate check.

    `stream` is the socket, kept here because http.client drops `sock` as soon as
    a response says it will close the connection, while the body is still read."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address
        self._tls = ssl.create_default_context() if target.scheme == "https" else None
        self.stream: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = self.stream = sock


def _read_body(
    stream: socket.socket,
    response: http.client.HTTPResponse,
    settings: Settings,
    deadline: float,
) -> bytes:
    max_bytes = settings.pipeline.max_bytes
    length = response.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise _too_large(f"{int(length)} bytes", max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = _remaining(deadline)
        if remaining <= 0:
            raise _timeout(settings)
        # One socket read at a time, each bounded by what is left of the budget,
        # so a server dripping bytes cannot stretch the download.
        stream.settimeout(remaining)
        chunk = response.read1(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(f"more than {max_bytes} bytes", max_bytes)
        chunks.append(chunk)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _invalid(message: str) -> ImageError:
    return ImageError(message, code="image.url_invalid", param="image")


def _failed(message: str) -> ImageError:
    return ImageError(message, code="image.fetch_failed", param="image")


def _timeout(settings: Settings) -> ImageError:
    return ImageError(
        f"Fetching the image URL took longer than {settings.fetch_total_timeout_seconds:g} s "
        f"(connect {settings.fetch_connect_timeout_seconds:g} s).",
        code="image.fetch_timeout",
        param="image",
    )


def _too_large(size: str, limit: int) -> ImageError:
    return ImageError(
        f"The image at the URL is {size}; the limit is {limit} bytes.",
        code="image.too_large",
        param="image",
    )
