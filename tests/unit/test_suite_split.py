"""The test suite's own split: the one line that says which test data is missing, FACEMATCH_REQUIRE_DATA
turning skips into failures, and the guard that keeps unit tests off subprocesses and the real data."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import (
    DATA, REQUIRE_DATA, TEST_DATA, WEIGHTS, UnitIsolationError, data_required, missing_data, missing_weights,
    skip_as_failure,
)


def test_missing_data_is_one_line_naming_what_and_how_to_point_at_it(tmp_path):
    for rel in TEST_DATA:
        (tmp_path / rel).mkdir(parents=True)
    assert missing_data(tmp_path) is None
    shutil.rmtree(tmp_path / "lfw-aligned-112")
    shutil.rmtree(tmp_path / "seed-splits")
    line = missing_data(tmp_path)
    assert line.startswith(f"test data incomplete at {tmp_path}: no lfw-aligned-112, seed-splits (set FACEMATCH_DATA_DIR=DIR ")
    assert line.endswith("; get LFW with `uv run facematch-data download lfw --dest DIR/lfw`, the rest as "
                         "docs/testing.md says)") and "\n" not in line
    nowhere = missing_data(tmp_path / "nowhere")
    assert nowhere.startswith(f"test data not found at {tmp_path / 'nowhere'} (set FACEMATCH_DATA_DIR=DIR holding lfw/pairs.txt")
    assert "\n" not in nowhere


def test_missing_weights_is_one_line(tmp_path):
    ckpt = tmp_path / "mobilefacenet_casia_068.ckpt"
    assert missing_weights(ckpt) == (f"MobileFaceNet weights not found at {ckpt} (set FACEMATCH_WEIGHTS_DIR=DIR holding "
                                     "mobilefacenet_casia_068.ckpt; get it with `uv run facematch-data download "
                                     "mobilefacenet --dest DIR`)")
    ckpt.write_bytes(b"")
    assert missing_weights(ckpt) is None


@pytest.mark.parametrize("value,required", [(None, False), ("", False), ("0", False), ("false", False), ("no", False),
                                            ("1", True), ("yes", True), ("true", True)])
def test_require_data_comes_from_the_environment(value, required):
    assert data_required({} if value is None else {REQUIRE_DATA: value}) is required


def test_a_skip_under_require_data_fails_with_the_same_line():
    reason = missing_data(DATA / "nowhere")
    assert skip_as_failure(reason) == f"{reason} [FACEMATCH_REQUIRE_DATA=1: integration tests may not be skipped]"


def test_the_guard_refuses_processes_and_the_real_data(unit_guard):
    with pytest.raises(UnitIsolationError, match=r"a unit test started a process \(subprocess.Popen .*tests/integration"):
        subprocess.run(["true"])
    with pytest.raises(UnitIsolationError, match="os.system"):
        os.system("true")
    for root in (DATA, WEIGHTS):
        with pytest.raises(UnitIsolationError, match=f"a unit test read {root}/README.md"):
            open(root / "README.md")
        with pytest.raises(UnitIsolationError, match=f"read {root}"):
            os.listdir(root)
    assert len(unit_guard.violations) == 6
    unit_guard.violations.clear()  # all refused: this test passes


def test_the_guard_lets_unit_tests_use_their_own_files(tmp_path, unit_guard):
    (tmp_path / "x.txt").write_text("mine")
    assert (tmp_path / "x.txt").read_text() == "mine" and os.listdir(tmp_path) == ["x.txt"]
    assert (DATA / "lfw" / "pairs.txt").exists() in (True, False)  # asking whether it is there reads nothing
    assert unit_guard.violations == []
