"""Integration tests: the real data in $FACEMATCH_DATA_DIR / $FACEMATCH_WEIGHTS_DIR (default ../shared/data
and ../shared/weights), subprocesses, training and evaluation through Hydra. Every test here is marked
``integration`` (tests/conftest.py).

A test that reads the data asks for ``data_dir``, ``lfw_root`` or ``mfn_weights`` (as an argument or with
``usefixtures``). Without the data it is skipped with one line saying what is missing and how to point at
it, and all such skips fold into one summary line. With FACEMATCH_REQUIRE_DATA=1 (.ci/run) every skipped
integration test fails instead, with that same line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import DATA, MFN_WEIGHTS, data_required, missing_data, missing_weights, skip_as_failure


def _skip_missing(reason: str | None) -> None:
    if reason:
        pytest.skip(reason)


SKIP_LOCATION = (__file__, _skip_missing.__code__.co_firstlineno + 2)  # the pytest.skip line above


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$FACEMATCH_DATA_DIR with everything the integration tests read (tests/helpers.py, TEST_DATA)."""
    _skip_missing(missing_data(DATA))
    return DATA


@pytest.fixture(scope="session")
def lfw_root(data_dir) -> Path:
    return data_dir / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def mfn_weights() -> Path:
    """The MobileFaceNet CASIA-WebFace weights in $FACEMATCH_WEIGHTS_DIR."""
    _skip_missing(missing_weights(MFN_WEIGHTS))
    return MFN_WEIGHTS


@pytest.fixture(scope="module")
def face_a(lfw_root) -> Image.Image:
    return Image.open(lfw_root / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").convert("RGB")


@pytest.fixture(scope="module")
def face_b(lfw_root) -> Image.Image:
    return Image.open(lfw_root / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg").convert("RGB")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped integration test fails under FACEMATCH_REQUIRE_DATA=1; otherwise a missing-data skip is
    reported at one place, so that pytest -ra folds them into one line."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2])
        reason = message.removeprefix("Skipped: ")
        if data_required():
            report.outcome = "failed"
            report.longrepr = skip_as_failure(reason)
        elif reason in (missing_data(DATA), missing_weights(MFN_WEIGHTS)):
            report.longrepr = (*SKIP_LOCATION, message)
    return report
