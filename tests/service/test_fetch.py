"""Safe URL fetch: the address rules, and fetches from real local HTTP(S)
servers (redirects into the private network, a server that never answers, a
body over the cap, DNS rebinding, TLS with the URL's host name)."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipeline.errors import ImageError
from pipeline.settings import PipelineSettings
from pipeline.version import package_version
from service.errors import TransientError
from service.fetch import check_url, fetch, forbidden_reason, parse_url
from service.settings import Settings

BODY = b"\xff\xd8\xff\xe0 pretend this is a jpeg " * 100


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.5.6.7", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.254", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("240.0.0.1", "private"),  # reserved, listed as private by IANA too
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
        ("64:ff9b::a00:1", "reserved"),  # NAT64
        ("2001:db8::1", "private"),  # documentation
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_loopback_setting_allows_loopback_only() -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert forbidden_reason(ipaddress.ip_address(address), allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "2002:7f00:1::"):
        assert forbidden_reason(ipaddress.ip_address(address), allow_loopback=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "example.com/a.jpg",
        "http://",
        "http:///path",
        "https://user:pass@example.com/a.jpg",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/a\nb",
        "http://a..b/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(ImageError) as info:
        parse_url(url)
    assert info.value.code == "image.url_invalid"
    assert info.value.param == "image"


def test_url_parts() -> None:
    assert parse_url("HTTPS://Bücher.example/p/a.jpg?x=1") == (
        "https",
        "xn--bcher-kva.example",
        443,
        "/p/a.jpg?x=1",
    )
    assert parse_url("http://example.com") == ("http", "example.com", 80, "/")
    assert parse_url("http://[2606:4700::1111]:8080/x") == ("http", "2606:4700::1111", 8080, "/x")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://localhost:8000/a.jpg",
        "http://10.1.2.3/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://[::ffff:127.0.0.1]/a.jpg",
        "http://2130706433/a.jpg",  # 127.0.0.1 as one number
        "http://0x7f.1/a.jpg",
        "http://[fe80::1]/",
    ],
)
def test_check_url_refuses_what_resolves_to_non_public(url: str) -> None:
    with pytest.raises(ImageError) as info:
        check_url(url, Settings())
    assert info.value.code == "image.url_forbidden"


def test_check_url_refuses_a_name_with_any_private_address(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = FakeResolver(["93.184.216.34", "10.0.0.7"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(ImageError) as info:
        check_url("https://mixed.example/a.jpg", Settings())
    assert info.value.code == "image.url_forbidden"
    assert "10.0.0.7" in info.value.message


def test_unresolvable_host_is_worth_a_retry() -> None:
    with pytest.raises(TransientError) as info:
        check_url("http://no-such-host.invalid/a.jpg", Settings())
    assert info.value.code == "image.fetch_failed"


# --- fetches from real local servers ----------------------------------------


class FakeResolver:
    """Stands in for DNS: answers every name with `answers` (one list per call, the
    last repeated), and counts the calls. Only names reach it, never IP literals."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self._real = socket.getaddrinfo

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            ipaddress.ip_address(host)
            return self._real(host, port, *args, **kwargs)
        except ValueError:
            pass
        self.calls.append(host)
        addresses = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


class Handler(http.server.BaseHTTPRequestHandler):
    hosts_seen: ClassVar[list[str]] = []
    agents_seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        Handler.hosts_seen.append(self.headers.get("Host", ""))
        Handler.agents_seen.append(self.headers.get("User-Agent", ""))
        path = self.path
        if path == "/ok":
            self._send(200, BODY)
        elif path == "/redirect-relative":
            self._redirect("/ok")
        elif path.startswith("/redirect-to/"):
            self._redirect(path.removeprefix("/redirect-to/"))
        elif path.startswith("/hops/"):
            n = int(path.removeprefix("/hops/"))
            self._redirect(f"/hops/{n - 1}" if n > 0 else "/ok")
        elif path == "/big":
            self._send(200, b"x" * 5000)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            stop = threading.Event()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                if stop.wait(0.2):
                    break
        elif path == "/missing":
            self._send(404, b"not here")
        elif path == "/overloaded":
            self._send(503, b"busy")
        else:
            self._send(500, b"unknown test path")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real HTTP server on loopback; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and
    never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def loopback_settings(**changes: Any) -> Settings:
    return Settings(allow_loopback_urls=True, **changes)


def fetch_error(url: str, settings: Settings) -> ImageError:
    with pytest.raises(ImageError) as info:
        fetch(url, settings)
    return info.value


def test_fetch_returns_the_body(server: str) -> None:
    assert fetch(f"{server}/ok", loopback_settings()) == BODY
    # Servers see which build asks, and why.
    assert Handler.agents_seen[-1] == f"avatar-prep/{package_version()} (image fetch)"


def test_loopback_is_refused_without_the_setting(server: str) -> None:
    assert fetch_error(f"{server}/ok", Settings()).code == "image.url_forbidden"


def test_relative_redirects_are_followed(server: str) -> None:
    assert fetch(f"{server}/redirect-relative", loopback_settings()) == BODY
    assert fetch(f"{server}/hops/2", loopback_settings()) == BODY


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
    ],
)
def test_redirects_into_the_private_network_are_refused(server: str, target: str) -> None:
    error = fetch_error(f"{server}/redirect-to/{target}", loopback_settings())
    assert error.code == "image.url_forbidden"


def test_redirect_to_another_scheme_is_invalid(server: str) -> None:
    error = fetch_error(f"{server}/redirect-to/file:///etc/passwd", loopback_settings())
    assert error.code == "image.url_invalid"


def test_more_than_three_redirects_fail(server: str) -> None:
    assert fetch(f"{server}/hops/2", loopback_settings()) == BODY  # 3 redirects
    error = fetch_error(f"{server}/hops/3", loopback_settings())  # 4 redirects
    assert error.code == "image.fetch_failed"
    assert "more than 3" in error.message


def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    settings = loopback_settings(fetch_total_timeout_seconds=1.0)
    error = fetch_error(f"http://127.0.0.1:{silent_port}/a.jpg", settings)
    assert error.code == "image.fetch_timeout"


def test_a_dripping_server_cannot_stretch_the_total_time(server: str) -> None:
    settings = loopback_settings(fetch_total_timeout_seconds=1.0)
    assert fetch_error(f"{server}/drip", settings).code == "image.fetch_timeout"


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_a_body_over_the_cap_is_too_large(server: str, path: str) -> None:
    settings = loopback_settings(pipeline=PipelineSettings(max_bytes=4000))
    error = fetch_error(f"{server}{path}", settings)
    assert error.code == "image.too_large"
    assert "4000" in error.message


def test_http_errors(server: str) -> None:
    assert fetch_error(f"{server}/missing", loopback_settings()).code == "image.fetch_failed"
    with pytest.raises(TransientError) as info:
        fetch(f"{server}/overloaded", loopback_settings())
    assert info.value.code == "image.fetch_failed"


def test_a_refused_connection_is_worth_a_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    with pytest.raises(TransientError) as info:
        fetch(f"http://127.0.0.1:{port}/a.jpg", loopback_settings())
    assert info.value.code == "image.fetch_failed"


def test_the_checked_address_is_the_one_connected_to(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers loopback (allowed here) once, then a private
    address. The fetch must resolve once and connect where it checked, sending
    the name in the Host header."""
    port = server.rsplit(":", 1)[1]
    resolver = FakeResolver(["127.0.0.1"], ["10.0.0.9"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    Handler.hosts_seen.clear()
    assert fetch(f"http://rebind.example:{port}/ok", loopback_settings()) == BODY
    assert resolver.calls == ["rebind.example"]
    assert Handler.hosts_seen == [f"rebind.example:{port}"]


def test_each_redirect_is_resolved_and_checked_again(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = server.rsplit(":", 1)[1]
    resolver = FakeResolver(["127.0.0.1"], ["10.0.0.9"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    error = fetch_error(
        f"http://first.example:{port}/redirect-to/http://second.example/a.jpg",
        loopback_settings(),
    )
    assert error.code == "image.url_forbidden"
    assert resolver.calls == ["first.example", "second.example"]


# --- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    """A real HTTPS server on loopback with a self-signed certificate for
    `avatar-prep.example`; yields (port, certificate file, SNI names seen)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=avatar-prep.example",
            "-addext", "subjectAltName=DNS:avatar-prep.example",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name or "")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield str(httpd.server_port), cert, names
    httpd.shutdown()
    httpd.server_close()


def test_https_to_the_checked_address_keeps_sni_and_verifies_the_name(
    tls_server: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert, names = tls_server
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["127.0.0.1"]))
    url = f"https://avatar-prep.example:{port}/ok"

    # Not trusted: the certificate is checked, so the fetch fails for good.
    assert fetch_error(url, loopback_settings()).code == "image.fetch_failed"

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
    names.clear()
    assert fetch(url, loopback_settings()) == BODY
    assert names == ["avatar-prep.example"]
