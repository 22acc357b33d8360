"""Unit tests: synthetic tensors, arrays and files they make themselves. A guard fails any unit test that
starts a process or opens or lists anything under $FACEMATCH_DATA_DIR / $FACEMATCH_WEIGHTS_DIR: such a
test belongs in tests/integration (so the split cannot silently rot)."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import DATA, WEIGHTS, IsolationGuard, UnitIsolationError

GUARD = IsolationGuard([DATA, WEIGHTS])
sys.addaudithook(GUARD)  # for the life of the process; it only acts while a unit test runs


@pytest.fixture(autouse=True)
def unit_guard(request):
    GUARD.violations.clear()
    GUARD.active = True
    try:
        yield GUARD
    finally:
        GUARD.active = False
    if GUARD.violations and not getattr(request.node, "failed_on_isolation", False):  # caught and swallowed
        pytest.fail(f"a unit test {'; '.join(GUARD.violations)}: move it to tests/integration", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(UnitIsolationError):
        item.failed_on_isolation = True  # already failed with the guard's message: not again at teardown
    return report
