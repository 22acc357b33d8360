"""Two kinds of tests: ``tests/unit`` (synthetic inputs, no data, no subprocess: fast) and ``tests/integration``
(real data from $FACEMATCH_DATA_DIR, default ../shared/data, and subprocesses), marked ``integration``
here. Shared helpers are in tests/helpers.py; the data fixtures in tests/integration/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facematch.quiet import THIRD_PARTY_WARNINGS
from tests.helpers import compose

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "integration")

# Under pytest-xdist (`-n N`) the workers share the cores: one torch thread each (and in the subprocesses
# they start), or N workers x all-core thread pools spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def pytest_configure(config):
    """The third-party warnings the entry points filter (facematch.quiet) are filtered in every test too;
    any other warning shows in the summary."""
    for message, category in THIRD_PARTY_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:{category}")


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(config, items):
    """Every test under tests/integration is marked ``integration``; a unit test may not be; a test
    outside those two folders is a usage error (so the split cannot silently rot). The ``slow`` tests run
    first: pytest-xdist hands tests out in this order, so the long ones spread over the workers instead of
    one of them finishing last while the others idle."""
    for item in items:
        try:
            kind = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:  # a test file given from elsewhere: not ours to sort
            continue
        if kind not in KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit or tests/integration (see docs/testing.md)")
        if kind == "integration":
            item.add_marker(pytest.mark.integration)
        elif item.get_closest_marker("integration"):
            raise pytest.UsageError(f"{item.nodeid}: a unit test may not be marked integration; move it to "
                                    "tests/integration")
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: otherwise file order


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides: str, config_name: str = "train", out: str = "run"):
        return compose(list(overrides), tmp_path / out, config_name)

    return make
