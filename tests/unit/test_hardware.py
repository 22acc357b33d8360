"""Precision and device by capability (monkeypatched CPU flags and CUDA), and the machine info. The allocator
settings, in subprocesses: tests/integration/test_allocator.py."""

from __future__ import annotations

import pytest

from facematch.errors import FacematchError
from facematch.utils import hardware


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
