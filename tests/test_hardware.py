"""The allocator settings (page faults of a real allocation loop) and precision / device by capability."""

from __future__ import annotations

import json
import platform

import pytest

from tests.helpers import run_cli
from facematch.errors import FacematchError
from facematch.utils import hardware

# Allocate, touch and free a 64 MiB tensor 50 times; report this process's minor page faults.
FAULTS = """
import json, resource, sys
import facematch, torch
from facematch.utils import allocator
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "state": allocator.tune()}))
"""


def _faults(env: dict, monkeypatch) -> dict:
    from facematch.utils.allocator import SETTINGS

    for name in SETTINGS:  # this test process exported them when it imported facematch
        monkeypatch.delenv(name, raising=False)
    r = run_cli(["-c", FAULTS], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator settings are for glibc")
def test_importing_facematch_stops_the_page_fault_per_allocation(monkeypatch):
    on = _faults({"FACEMATCH_MALLOC": "1"}, monkeypatch)
    off = _faults({"FACEMATCH_MALLOC": "0"}, monkeypatch)
    assert on["state"]["applied"] and not off["state"]["applied"]
    # 64 MiB = 16,384 pages: without the settings every allocation is a fresh mmap that faults them in
    # again (50x); with them the heap keeps the blocks and, after a few rounds of growth, reuses them
    assert off["faults"] > 40 * 16384
    assert on["faults"] < off["faults"] / 4


def test_spawned_children_inherit_the_settings_through_the_environment():
    r = run_cli(["-c", "import os, facematch; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"],
                env={"FACEMATCH_MALLOC": "1"})
    if platform.libc_ver()[0] == "glibc":
        assert int(r.stdout.strip()) >= 1 << 30


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert hardware.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_tile", "amx_bf16"}))
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    assert hardware.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(FacematchError, match="precision='fp16' is unknown"):
        hardware.resolve_precision("fp16", "cpu")


def test_device_auto_and_a_missing_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolve_device("auto") == "cpu"
    with pytest.raises(FacematchError, match="no CUDA GPU is visible"):
        hardware.resolve_device("cuda")
    with pytest.raises(FacematchError, match="device='tpu' is unknown"):
        hardware.resolve_device("tpu")


def test_machine_info_names_the_cpu_and_its_flags():
    info = hardware.machine_info()
    assert info["cpu"]["model"] and info["cpu"]["cores"] >= 1
    assert set(info["cpu"]["flags"]) <= set(hardware.SPEED_FLAGS)
    assert isinstance(info["cpu"]["native_bf16"], bool)
