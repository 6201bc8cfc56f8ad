"""Root fixtures: the real components (tests/services.py) for every test directory,
and the face models, loaded once for every test that runs the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline import FaceModels

pytest_plugins = ["tests.services"]


@pytest.fixture(scope="session")
def models() -> Iterator[FaceModels]:
    """The MediaPipe graphs, loaded once per test session as once per process in
    production; imported here, not at the top, so decode-only tests stay light."""
    from pipeline import FaceModels

    loaded = FaceModels.load()
    yield loaded
    loaded.close()
