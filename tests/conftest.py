"""Shared fixtures: real data from $FACEMATCH_DATA_DIR (default ../shared/data), in-process Hydra composition.
Helpers shared by the test modules are in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import DATA, MFN_WEIGHTS, compose, missing_data, missing_weights

# Under pytest-xdist (`-n N`) the workers share the cores: one torch thread each (and in the subprocesses
# they start), or N workers x all-core thread pools spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$FACEMATCH_DATA_DIR; the test is skipped, with one line saying what is missing, without it."""
    reason = missing_data(DATA)
    if reason:
        pytest.skip(reason)
    return DATA


@pytest.fixture(scope="session")
def lfw_root(data_dir) -> Path:
    return data_dir / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def mfn_weights() -> Path:
    """The MobileFaceNet CASIA-WebFace weights; the test is skipped, with one line, without them."""
    reason = missing_weights(MFN_WEIGHTS)
    if reason:
        pytest.skip(reason)
    return MFN_WEIGHTS


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides: str, config_name: str = "train", out: str = "run"):
        return compose(list(overrides), tmp_path / out, config_name)

    return make
