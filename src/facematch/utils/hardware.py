"""What this machine can do: the device to run on, whether bf16 is native, the CPU model and flags.

Precision: :data:`DEFAULT_PRECISION` (fp32) unless bf16 is asked for by name, so that a reported figure
is the same on every machine (bf16 moves pairs across the threshold: docs/speed.md). ``precision=auto``
picks bf16 only where the hardware computes in bf16 natively: a CUDA GPU that supports it, or a CPU with
AVX512-BF16 or AMX. Elsewhere bf16 is emulated (an AVX2-only CPU ran MobileFaceNet 20x slower in bf16 than
in fp32), so auto stays fp32. Every speed figure records :func:`cpu_info`.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from pathlib import Path

from facematch.errors import FacematchError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
#: What every embedding pass runs in unless told otherwise: the same on every CPU and GPU.
DEFAULT_PRECISION = "fp32"
#: CPU flags that decide speed here (SIMD width, native bf16 / int8 dot products, AMX tiles).
SPEED_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
               "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model or platform.processor() or platform.machine(), flags


def cpu_flags() -> frozenset[str]:
    return _proc_cpuinfo()[1]


def native_bf16_cpu() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    flags = cpu_flags()
    if flags:
        return any(f in flags for f in NATIVE_BF16_FLAGS)
    try:  # no /proc/cpuinfo: ask oneDNN (it also says yes for emulated bf16, hence second)
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def cpu_info() -> dict:
    """CPU model, the flags that matter for speed, torch's SIMD level and thread count: for every figure."""
    import torch

    model, flags = _proc_cpuinfo()
    return {
        "model": model,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "flags": [f for f in SPEED_FLAGS if f in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "native_bf16": native_bf16_cpu(),
        "torch": torch.__version__,
    }


def gpu_info() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
            "bf16": torch.cuda.is_bf16_supported()}


def machine_info() -> dict:
    """What every speed figure is recorded with: the CPU (model, flags) and the GPU, if any."""
    return {"cpu": cpu_info(), "gpu": gpu_info()}


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is a user error."""
    import torch

    name = str(device or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise FacematchError(f"device={device!r} is unknown; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacematchError(f"device={device} but no CUDA GPU is visible; use device=auto or device=cpu")
    return name


def resolve_precision(precision: str | None, device: str) -> str:
    """``fp32`` or ``bf16`` for ``precision`` (auto | fp32 | bf16; None: :data:`DEFAULT_PRECISION`) on
    ``device`` (already resolved)."""
    name = str(precision or DEFAULT_PRECISION).lower()
    if name not in PRECISIONS:
        raise FacematchError(f"precision={precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}")
    if name != "auto":
        if name == "bf16" and device == "cpu" and not native_bf16_cpu():
            log.warning("precision=bf16 on a CPU without native bf16 (%s): expect it to run far slower than fp32",
                        cpu_info()["model"])
        return name
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16_cpu() else "fp32"


def plan_workers(requested: int | str, device: str, n_batches: int) -> tuple[int, int]:
    """``(decode workers, model threads)`` for embedding ``n_batches`` batches, counted together.

    ``auto``: on a GPU, decoding must keep up with the GPU, so up to 4 workers; on a CPU the model takes
    every core, and a worker of its own would preempt the model's threads at each layer's barrier (on 2 cores
    that costs far more than decoding inline: docs/speed.md), so workers only from 4 cores
    up, one per 8 cores, and the model gets the rest. An explicit number of workers is taken as it is."""
    import torch

    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    if n_batches <= 1:
        return 0, threads
    if requested != "auto":
        return max(0, int(requested)), threads
    if device != "cpu":
        return min(4, max(1, cores - 1)), threads
    if cores < 4:
        return 0, threads
    workers = max(1, cores // 8)
    return workers, max(1, min(threads, cores - workers))


def one_thread_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers decode one image at a time, so one torch thread each; N workers
    x N threads would oversubscribe the cores the model runs on."""
    import torch

    torch.set_num_threads(1)
