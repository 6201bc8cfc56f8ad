"""Services: made once per process from the settings, readiness of each
dependency, and what a process without face models may not do."""

from __future__ import annotations

import pytest

from service.runtime import Services
from service.settings import Settings
from service.storage import LocalStorage, S3Storage
from tests.service.conftest import FakeBroker, account, sample, upload
from tests.services import SeaweedS3


def test_embedded_defaults_are_ready(local_settings: Settings, broker: FakeBroker) -> None:
    services = Services.create(local_settings, broker)
    assert isinstance(services.storage, LocalStorage)
    assert services.check_ready() == {"database": True, "storage": True}
    services.close()


def test_storage_that_cannot_be_written_is_not_ready(
    local_settings: Settings, broker: FakeBroker
) -> None:
    local_settings.storage_dir.parent.mkdir(parents=True)
    local_settings.storage_dir.write_bytes(b"")  # a file where the folder should be
    services = Services.create(local_settings, broker)
    assert services.check_ready() == {"database": True, "storage": False}
    services.close()


def test_processing_needs_the_face_models(local: Services, broker: FakeBroker) -> None:
    me = account(local, "acme")
    avatar, _ = upload(local, me, sample("accept_portrait.jpg"))
    api_side = Services.create(local.settings, broker)  # as the API makes it: no models
    with pytest.raises(RuntimeError, match="FaceModels"):
        api_side.avatars.process(avatar.id)
    api_side.close()


@pytest.mark.integration
def test_real_components_readiness_follows_storage(
    service_settings: Settings, broker: FakeBroker, s3: SeaweedS3
) -> None:
    services = Services.create(service_settings, broker)
    assert isinstance(services.storage, S3Storage)
    assert services.check_ready() == {"database": True, "storage": True}
    s3.stop()
    try:
        assert services.check_ready() == {"database": True, "storage": False}
    finally:
        s3.start()
    assert services.check_ready() == {"database": True, "storage": True}
    services.close()
