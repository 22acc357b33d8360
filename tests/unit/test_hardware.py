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


NO_NATIVE_BF16 = frozenset({"avx", "avx2", "fma", "f16c"})
NATIVE_BF16 = frozenset({"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})


@pytest.mark.parametrize("flags", [NO_NATIVE_BF16, NATIVE_BF16],
                         ids=["cpu-without-native-bf16", "cpu-with-native-bf16"])
def test_default_precision_is_fp32_with_or_without_native_bf16(monkeypatch, tmp_path, flags):
    """Every reported figure runs in fp32 by default (evaluation, per-fold scoring and the feature store read
    the ``embed`` group of eval.yaml / train.yaml; facematch-calibrate and the other commands --precision), on
    a CPU without native bf16 and on one with it; bf16 runs only where it is named (or auto, where native)."""
    import torch

    from facematch.cli.calibrate import build_parser
    from facematch.embedding.engine import EngineSettings
    from tests.helpers import compose

    def resolve(device="auto", precision="fp32"):
        ran = EngineSettings(device=device, precision=precision).resolved()
        return ran.device, ran.precision

    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    native = hardware.native_bf16_cpu()
    assert native == (flags == NATIVE_BF16)
    for config in ("eval", "train"):
        embed = EngineSettings.from_config(compose([], tmp_path / config, config).embed).resolved()
        assert (embed.device, embed.precision) == ("cpu", "fp32"), config
    default = EngineSettings().resolved()  # the settings' own defaults (a config without the keys)
    assert (default.device, default.precision) == ("cpu", "fp32") and hardware.resolve_precision(None, "cpu") == "fp32"
    assert resolve(precision=build_parser().parse_args([]).precision) == ("cpu", "fp32")
    assert resolve("cpu", "bf16") == ("cpu", "bf16")  # by name, on both
    assert resolve("cpu", "auto") == ("cpu", "bf16" if native else "fp32")


def test_default_precision_is_fp32_on_a_gpu_with_bf16(monkeypatch, tmp_path):
    import torch

    from facematch.embedding.engine import EngineSettings
    from tests.helpers import compose

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    embed = EngineSettings.from_config(compose([], tmp_path, "eval").embed).resolved()
    assert (embed.device, embed.precision) == ("cuda", "fp32")
    both_auto = EngineSettings(device="auto", precision="auto").resolved()
    assert (both_auto.device, both_auto.precision) == ("cuda", "bf16")


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
