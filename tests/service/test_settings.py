"""The one settings object: defaults without servers, the environment, frozen."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults_need_no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AVATAR_PREP_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.broker_url == "filesystem://"
    assert settings.storage_backend == "local"
    assert settings.allow_loopback_urls is False
    assert (settings.fetch_connect_timeout_seconds, settings.fetch_total_timeout_seconds) == (3, 10)
    assert settings.fetch_max_redirects == 3
    assert settings.pipeline.output_size == 512


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATAR_PREP_DATABASE_URL", "postgresql+psycopg://db/avatars")
    monkeypatch.setenv("AVATAR_PREP_STORAGE_BACKEND", "s3")
    monkeypatch.setenv("AVATAR_PREP_S3_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AVATAR_PREP_PIPELINE__OUTPUT_SIZE", "640")
    monkeypatch.setenv("AVATAR_PREP_ALLOW_LOOPBACK_URLS", "true")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://db/avatars"
    assert settings.storage_backend == "s3"
    assert settings.pipeline.output_size == 640
    assert settings.allow_loopback_urls is True
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)  # secrets never reach logs


def test_settings_are_frozen_and_checked() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.max_queue_depth = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(storage_backend="ftp")
    with pytest.raises(ValidationError):
        Settings(fetch_total_timeout_seconds=0)
