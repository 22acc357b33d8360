"""The allocator settings, in subprocesses: the page faults of a real allocation loop, and spawned children
inheriting the settings through the environment."""

from __future__ import annotations

import json
import platform

import pytest

from tests.helpers import run_cli

# Allocate, touch and free a 64 MiB tensor 50 times; report this process's minor page faults.
FAULTS = """
import json, resource, sys
import facematch, torch
from facematch.utils import allocator
state = allocator.tune()  # what every entry point does first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "state": state}))
"""


def _faults(env: dict, monkeypatch) -> dict:
    from facematch.utils.allocator import SETTINGS

    for name in SETTINGS:  # a user's own values would win over the settings
        monkeypatch.delenv(name, raising=False)
    r = run_cli(["-c", FAULTS], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator settings are for glibc")
def test_tuned_allocator_stops_the_page_fault_per_allocation(monkeypatch):
    on = _faults({"FACEMATCH_MALLOC": "1"}, monkeypatch)
    off = _faults({"FACEMATCH_MALLOC": "0"}, monkeypatch)
    assert on["state"]["applied"] and not off["state"]["applied"]
    # 64 MiB = 16,384 pages: without the settings every allocation is a fresh mmap that faults them in
    # again (50x); with them the heap keeps the blocks and, after a few rounds of growth, reuses them
    assert off["faults"] > 40 * 16384
    assert on["faults"] < off["faults"] / 4


def test_spawned_children_apply_the_settings_themselves_and_the_environment_stays_clean():
    code = ("import os, facematch; from facematch.utils import allocator; "
            "print(allocator.tune()['applied'], os.environ.get('MALLOC_MMAP_THRESHOLD_'))")
    r = run_cli(["-c", code], env={"FACEMATCH_MALLOC": "1"})
    if platform.libc_ver()[0] == "glibc":
        assert r.stdout.split() == ["True", "None"]  # applied by mallopt; nothing exported to grandchildren


# Import every module of the package, then run an entry point (its --help: tuning comes first).
IMPORT_ALL = """
import importlib, pkgutil, facematch
from facematch.utils import allocator
for m in pkgutil.walk_packages(facematch.__path__, "facematch."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
print("tuned on import:", bool(allocator._state))
from facematch.cli.report import main
try:
    main(["--help"])
except SystemExit:
    pass
print("tuned by the entry point:", bool(allocator._state))
"""


def test_import_facematch_tunes_nothing_an_entry_point_does():
    r = run_cli(["-c", IMPORT_ALL], env={"FACEMATCH_MALLOC": "1"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "tuned on import: False" in r.stdout and "tuned by the entry point: True" in r.stdout, r.stdout
