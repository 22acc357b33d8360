"""Inference copies of a model: the caller's module is never touched; the copy may be rewritten for speed.

Runtimes (``runtime=``):

- ``eager``: a copy in eval mode, ``channels_last`` on CPU and GPU.
- ``fused``: BatchNorm folded into the preceding convolution (``torch.fx.experimental.optimization.fuse``),
  then ``channels_last``: the same arithmetic in fewer passes over memory.
- ``jit``: traced, frozen and ``torch.jit.optimize_for_inference`` (BN folding plus oneDNN layouts); CPU fp32.
- ``onnx``: exported to ONNX in memory (:func:`facematch.models.onnx_export.onnx_bytes`) and run by
  onnxruntime (:class:`~facematch.models.onnx_runtime.OnnxModule`); fp32, CPU (or onnxruntime's CUDA
  provider when it has one). A model loaded from an ONNX file (``--onnx`` / ``onnx_path``) runs this way
  under every runtime: it is the only way to run it (``auto`` tries nothing else on it).
- ``auto``: every candidate that applies is built and timed on the first real batch; the fastest one whose
  output agrees with eager fp32 within :data:`MAX_COSINE_GAP` is kept (:func:`choose`). ``jit`` is a
  candidate only for jobs large enough to repay its build time.

bf16 runs the eager copy under autocast (on CPU only where the CPU computes bf16 natively, see
:mod:`facematch.utils.hardware`).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from facematch.errors import FacematchError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "fused", "jit", "onnx")
#: A rewritten model is used only if every embedding of the probe batch has cosine >= 1 - this with eager fp32.
MAX_COSINE_GAP = 1e-4
#: ``auto`` compares runtimes only for jobs of at least this many images (a pair of photos runs eager) ...
AUTO_MIN_IMAGES = 256
#: ... and builds the traced candidate only for jobs of at least this many.
JIT_MIN_IMAGES = 2048


@dataclass
class InferenceModel:
    """A callable NCHW float batch -> (N, D) float32 features, with how it was made."""

    net: nn.Module
    runtime: str
    device: torch.device
    bf16: bool = False
    channels_last: bool = True
    info: dict = field(default_factory=dict)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x)
        return out.float()


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise FacematchError(f"runtime={runtime!r} is unknown; choose one of: {', '.join(RUNTIMES)}")
    return runtime


def _copy(module: nn.Module, device: torch.device) -> nn.Module:
    net = copy.deepcopy(module).eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def is_onnx(module: nn.Module) -> bool:
    from facematch.models.onnx_runtime import OnnxModule

    return isinstance(module, OnnxModule)


def _onnx(module: nn.Module, runtime: str, device: torch.device, bf16: bool,
          example: torch.Tensor | None) -> InferenceModel:
    """``runtime=onnx``: a copy of an OnnxModule (its own session, opened with the job's thread count), or a
    PyTorch module exported in memory at the example's input size."""
    from facematch.models.onnx_export import onnx_bytes
    from facematch.models.onnx_runtime import OnnxModule

    if bf16:
        log.info("onnxruntime runs this model in fp32 (bf16 applies to PyTorch runtimes only)")
    if is_onnx(module):
        if runtime not in ("onnx", "auto"):
            log.info("runtime=%s does not apply to an ONNX model; using onnx", runtime)
        net = copy.deepcopy(module)
    else:
        if example is None:
            raise ValueError("runtime=onnx needs an example batch to export at its input size")
        net = OnnxModule(onnx_bytes(module, tuple(example.shape[2:])), name=f"{type(module).__name__} (runtime=onnx)")
    return InferenceModel(net, "onnx", device, channels_last=False)


def build(module: nn.Module, runtime: str, device: torch.device, *, bf16: bool = False,
          example: torch.Tensor | None = None) -> InferenceModel:
    """An :class:`InferenceModel` of ``module`` for ``runtime`` (not ``auto``)."""
    if runtime == "onnx" or is_onnx(module):
        return _onnx(module, runtime, device, bf16, example)
    if runtime == "eager" or bf16 or device.type != "cpu":
        if runtime not in ("eager", "auto"):
            log.info("runtime=%s applies to CPU fp32 only; using eager", runtime)
        return InferenceModel(_copy(module, device).to(memory_format=torch.channels_last), "eager", device, bf16)
    if runtime == "fused":
        from torch.fx.experimental.optimization import fuse

        net = fuse(_copy(module, device), inplace=True).to(memory_format=torch.channels_last)
        return InferenceModel(net, "fused", device)
    if runtime == "jit":
        if example is None:
            raise ValueError("runtime=jit needs an example batch to trace")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python values in the graph
            traced = torch.jit.trace(_copy(module, device), example[:8].to(device))
            net = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        return InferenceModel(net, "jit", device, channels_last=False)
    raise FacematchError(f"runtime={runtime!r} is unknown; choose one of: {', '.join(RUNTIMES)}")


def _seconds(model: InferenceModel, x: torch.Tensor, repeats: int = 2) -> tuple[float, torch.Tensor]:
    model(x)  # warm-up (oneDNN primitive creation, allocator growth, the tracer's first runs)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model(x)
        best = min(best, time.perf_counter() - t0)
    return best, out


def choose(module: nn.Module, x: torch.Tensor, device: torch.device, *, n_images: int, bf16: bool = False,
           probe_rows: int = 64) -> InferenceModel:
    """``runtime=auto``: the candidate that runs ``x[:probe_rows]`` fastest and matches eager fp32 on it
    (an ONNX model: onnx, its only runtime)."""
    if is_onnx(module):
        return build(module, "onnx", device, bf16=bf16)
    eager = build(module, "eager", device, bf16=bf16)
    if bf16 or device.type != "cpu" or n_images < AUTO_MIN_IMAGES:
        return eager
    probe = x[:probe_rows]
    names = ["fused"] + (["jit"] if n_images >= JIT_MIN_IMAGES else [])
    t_ref, ref = _seconds(eager, probe)
    timings = {"eager": t_ref}
    best, best_t = eager, t_ref
    for name in names:
        try:
            cand = build(module, name, device, example=probe)
            t, out = _seconds(cand, probe)
        except Exception as err:  # a model the tracer or fuser cannot handle: stay with what works
            log.info("runtime %s not usable for this model (%s: %s)", name, type(err).__name__, err)
            continue
        gap = float(1 - torch.nn.functional.cosine_similarity(out, ref, dim=1).min())
        timings[name] = t
        if gap > MAX_COSINE_GAP:
            log.info("runtime %s differs from eager fp32 (cosine gap %.2e); not used", name, gap)
            continue
        if t < best_t:
            best, best_t = cand, t
    best.info = {"probe_images_per_s": {k: round(probe.shape[0] / v, 1) for k, v in timings.items()}}
    log.info("inference runtime: %s (probe images/s: %s)", best.runtime, best.info["probe_images_per_s"])
    return best
