"""Signed URLs: a signature binds the resource and the expiry to the secret."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from service.settings import Settings
from service.signing import UrlSigner, make_signer

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_signature_holds_for_its_resource_until_it_expires() -> None:
    signer = UrlSigner(SECRET, ttl_seconds=300)
    expires, signature = signer.sign("avat_1/4x3", now=1000.0)

    assert expires == 1300
    assert signer.verify("avat_1/4x3", expires, signature, now=1299.0)
    assert not signer.verify("avat_1/4x3", expires, signature, now=1301.0)
    assert not signer.verify("avat_1/3x4", expires, signature, now=1000.0)
    assert not signer.verify("avat_1/4x3", expires + 1, signature, now=1000.0)
    assert not UrlSigner(SECRET[::-1], 300).verify("avat_1/4x3", expires, signature, now=1000.0)
    assert not signer.verify("avat_1/4x3", expires, "é" * 64, now=1000.0)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        UrlSigner(b"short", 300)


def test_the_configured_secret_wins_over_the_local_one(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, url_signing_secret=SECRET.decode())
    expires, signature = UrlSigner(SECRET, 300).sign("x", now=0)
    assert make_signer(configured).verify("x", expires, signature, now=0)
    assert not (tmp_path / "url-signing-secret").exists()


def test_processes_of_one_machine_share_one_local_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    signers: list[UrlSigner] = []
    threads = [
        threading.Thread(target=lambda: signers.append(make_signer(settings))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expires, signature = signers[0].sign("avat_1/overlay", now=0)
    assert all(s.verify("avat_1/overlay", expires, signature, now=0) for s in signers)
    secret = tmp_path / "var" / "url-signing-secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    assert [p.name for p in secret.parent.iterdir()] == ["url-signing-secret"]
