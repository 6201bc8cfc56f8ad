"""Shared fixtures of the pipeline tests: the files in sample_images/ (see its
README.md for what each shows; a missing file fails the test that asks for it,
regenerate with `.venv/bin/python sample_images/make_samples.py`) and one set of
face models for the whole session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pipeline import PipelineSettings, Rejected, prepare
from pipeline.decode import decode
from pipeline.detect import Candidate, detect
from pipeline.landmarks import Face, fit_faces
from pipeline.prepare import shrink
from pipeline.probe import probe
from sample_images import SAMPLES

if TYPE_CHECKING:
    from pipeline import FaceModels

DEFAULTS = PipelineSettings()


def at_detection_size(data: bytes) -> np.ndarray:
    """The image `data` probed and decoded upright on the default settings, then shrunk
    to their `detect_side`: what the detectors and the face mesh are given."""
    return shrink(decode(data, probe(data, DEFAULTS)).rgb, DEFAULTS.detect_side)


def candidates_in(data: bytes, models: FaceModels) -> tuple[np.ndarray, list[Candidate]]:
    """The detection-size image of `data` and the face candidates the plain detector
    passes find on it (default settings), largest first."""
    rgb = at_detection_size(data)
    return rgb, detect(rgb, models, DEFAULTS.min_detection_score)


def faces_in(data: bytes, models: FaceModels) -> tuple[np.ndarray, list[Face]]:
    """The detection-size image of `data` and the faces the landmark model confirms
    on it (plain detector passes, default settings), largest first."""
    rgb, candidates = candidates_in(data, models)
    return rgb, fit_faces(rgb, candidates, models, DEFAULTS.max_faces_checked)


def rejection(data: bytes, models: FaceModels, settings: PipelineSettings = DEFAULTS) -> Rejected:
    """What `prepare` raises for `data` (on the default settings unless told), failing
    the test if it accepts the photo instead."""
    with pytest.raises(Rejected) as caught:
        prepare(data, models, settings)
    return caught.value


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample_images/ folder."""
    return SAMPLES


@pytest.fixture(scope="session")
def sample_path() -> Callable[[str], Path]:
    """`sample_path("accept_portrait.jpg")` -> its path; fails if the file is missing."""

    def path(name: str) -> Path:
        found = SAMPLES / name
        assert found.is_file(), f"sample_images/{name} is missing; run make_samples.py"
        return found

    return path


@pytest.fixture(scope="session")
def sample_bytes(sample_path: Callable[[str], Path]) -> Callable[[str], bytes]:
    """`sample_bytes("accept_portrait.jpg")` -> the file's bytes."""
    return lambda name: sample_path(name).read_bytes()
