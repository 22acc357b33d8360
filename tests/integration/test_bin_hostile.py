"""Hostile .bin files through the commands, each in a child process under a memory cap: the named classes of
issue 30's table (one line, exit 2, in under 5 s and 500 MB) and a seeded generator of random pickles over the
whole opcode set and numpy's reconstruct path (no crash, hang, over-limit case or exception but a refusal)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, error_line, run_cli
from tests.hostile_bins import hostile_cases

HOSTILE = hostile_cases()
MB = 1 << 20


def capped(limit_mb: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * MB, limit_mb * MB))
    return set_limit


def run_capped(args: list[str], limit_mb: int, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("FACEMATCH_DEBUG", None)
    start = time.monotonic()
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                         env=env, preexec_fn=capped(limit_mb))
    return res, time.monotonic() - start


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_class_is_one_line_in_5_s_and_500_mb(tmp_path, name):
    data, words = HOSTILE[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    res, seconds = run_capped(["-m", "facematch.cli.data", "verify", str(path)], limit_mb=500, timeout=30)
    line = error_line(res.stderr)
    assert res.returncode == 2 and line.startswith(f"error: {path}") and words in line, res.stderr
    assert seconds < 5, f"{name}: {seconds:.1f} s"
    assert not res.stdout


@pytest.mark.parametrize("name", ["object_dtype_pointer", "huge_memo_index", "shared_bytearray", "newline_module"])
def test_hostile_classes_through_facematch_eval(tmp_path, mfn_weights, name):
    path = tmp_path / f"{name}.bin"
    path.write_bytes(HOSTILE[name][0])
    res = run_cli(["-m", "facematch.eval.job", "data=bin", f"data.path={path}", "arch=mobilefacenet",
                   f"arch.weights={mfn_weights}", f"hydra.run.dir={tmp_path / 'run'}"])
    line = error_line(res.stderr)
    assert res.returncode == 2 and line.startswith(f"error: {path}") and HOSTILE[name][1] in line


CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from facematch.data.bin_pickle import PickleRefused, read_pair_pickle
from tests.hostile_bins import random_case
first, n, progress = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = {{"cases": 0, "accepted": 0, "refused": 0, "errors": [], "max_case_s": 0.0}}
for seed in range(first, first + n):
    if seed % 500 == 0:
        open(progress, "w").write(str(seed))
    data = random_case(seed)
    t = time.monotonic()
    try:
        read_pair_pickle(data)
        out["accepted"] += 1
    except PickleRefused:
        out["refused"] += 1
    except BaseException as err:
        out["errors"].append([seed, repr(err)[:200]])
    out["max_case_s"] = max(out["max_case_s"], time.monotonic() - t)
    out["cases"] += 1
# VmHWM, not getrusage's ru_maxrss: Linux carries the forking parent's peak across exec into the latter
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
out["max_rss_mb"] = int(hwm[0]) / 1024
print(json.dumps(out))
"""
CASES_PER_CHILD = 10_000


@pytest.mark.parametrize("chunk", range(4))
def test_random_hostile_pickles_never_crash_hang_or_escape(tmp_path, chunk):
    first = chunk * CASES_PER_CHILD
    progress = tmp_path / "progress"
    res, seconds = run_capped(["-c", CHILD.format(repo=str(REPO)), str(first), str(CASES_PER_CHILD), str(progress)],
                              limit_mb=1024, timeout=300)
    last = progress.read_text() if progress.exists() else "none"
    assert res.returncode == 0, f"child died ({res.returncode}) after seed {last}: {res.stderr[-2000:]}"
    out = json.loads(res.stdout)
    print(f"chunk {chunk}: {out} in {seconds:.1f} s")
    assert out["cases"] == CASES_PER_CHILD and out["errors"] == []
    assert out["max_case_s"] < 2 and out["max_rss_mb"] < 500
    assert out["accepted"] > 0 and out["refused"] > out["accepted"]  # the generator reaches both outcomes
