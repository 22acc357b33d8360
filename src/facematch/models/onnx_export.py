"""An :class:`~facematch.models.base.EvalModel` -> an ONNX file that carries its own preprocessing.

What is exported is exactly what ``EvalModel.module`` computes: a normalised NCHW float batch -> (N, D)
features (a bare backbone's raw features, or a checkpoint's backbone + head projection before its L2
normalisation), with a dynamic batch axis. Everything a runtime needs to feed it and score its output goes
into the model's ``metadata_props`` (:data:`KEYS`, each value JSON): input size and layout, the pixel
normalisation (on 0..1 RGB, as :func:`facematch.embedding.embedder.normalize_batch` applies it), the
alignment template, the embedding size, the original PyTorch weights' fingerprint (so the calibrations and
caches keyed by it keep working) and the calibration the caller found for it (``facematch-export`` looks it
up: :func:`facematch.calibration.store.find_calibration`).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), the default and maintained
exporter of torch >= 2.9. The legacy TorchScript exporter (``dynamo=False``) also exports all three
backbones here and is ~2x faster, but torch 2.15 marks it deprecated (a DeprecationWarning on every call),
so it is not used. Files are written with the exporter's graph optimisation (fewer, fused nodes for any
runtime); in-memory exports for ``runtime=onnx`` skip it, since onnxruntime optimises the graph itself when
it opens a session (measured: the export takes half the time, the same outputs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from facematch.errors import FacematchError

log = logging.getLogger(__name__)

FORMAT = "facematch-onnx/1"
INPUT_NAME, OUTPUT_NAME = "input", "embedding"
#: The metadata keys every facematch ONNX file holds (``facematch.<key>``).
KEYS = ("format", "arch", "input_size", "input_layout", "mean", "std", "template", "embedding_dim",
        "fingerprint", "description", "calibration", "calibration_status", "opset", "exporter")
PREFIX = "facematch."
NOT_CALIBRATED = "not calibrated: run facematch-calibrate first"
#: the exporter's loggers: hundreds of INFO lines per export (each graph pass), which Hydra's console shows
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnx_ir", "onnxscript")


@contextlib.contextmanager
def _quiet_exporter():
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def module_to_onnx(module: nn.Module, input_size: tuple[int, int], *, opset: int | None = None,
                   optimize: bool = True):
    """``module`` (NCHW float -> (N, D)) as an ``onnx.ModelProto`` with a dynamic batch axis.

    The module is exported in eval mode and left as it was; the example batch has two rows so that the
    batch axis is not specialised to 1."""
    was_training = module.training
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(2, 3, *input_size, device=device)
    module.eval()
    try:
        # torch.export refuses inference-mode tensors: the Embedder builds its runtime inside inference_mode
        with torch.inference_mode(False), _quiet_exporter():
            program = torch.onnx.export(
                module, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, optimize=optimize,
                verbose=False)
    except Exception as err:  # an unsupported opset, an operator without an ONNX translation
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise FacematchError(f"ONNX export failed{f' at opset {opset}' if opset else ''}: {first}") from None
    finally:
        module.train(was_training)
    return program.model_proto


def onnx_bytes(module: nn.Module, input_size: tuple[int, int]) -> bytes:
    """An in-memory export for ``runtime=onnx`` (no exporter optimisation: onnxruntime does its own)."""
    return module_to_onnx(module, input_size, optimize=False).SerializeToString()


def opset_of(proto) -> int:
    return int(next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0))


def export_metadata(model, proto, cal=None, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The facematch metadata of ``model`` (an EvalModel) exported as ``proto`` (values not yet JSON), with
    its calibration ``cal`` (a :class:`~facematch.calibration.store.Calibration`, or None and the ``notes``
    saying why there is none)."""
    spec = model.spec
    return {
        "format": FORMAT,
        "arch": spec.name,
        "input_size": list(spec.input_size),
        "input_layout": "NCHW",
        "mean": list(spec.mean),
        "std": list(spec.std),
        "template": spec.template,
        "embedding_dim": int(model.description.get("embedding_dim") or spec.embedding_dim),
        "fingerprint": model.fingerprint,
        "description": model.description,
        "calibration": cal.as_dict() if cal is not None else None,
        "calibration_status": f"calibrated ({cal.origin})" if cal is not None else "; ".join([NOT_CALIBRATED, *notes]),
        "opset": opset_of(proto),
        "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
    }


def set_metadata(proto, meta: dict[str, Any]) -> None:
    """Write ``meta`` into ``proto.metadata_props`` as ``facematch.<key>`` = JSON, replacing older values."""
    keep = [p for p in proto.metadata_props if not p.key.startswith(PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, json.dumps(value, sort_keys=True, default=str)


@dataclass
class Exported:
    """What :func:`export_model` wrote."""

    path: Path
    size: int
    metadata: dict[str, Any]

    @property
    def calibrated(self) -> bool:
        return self.metadata["calibration"] is not None


def export_model(model, out: str | os.PathLike, *, opset: int | None = None, calibration=None,
                 calibration_notes: Sequence[str] = ()) -> Exported:
    """Export ``model`` (an EvalModel) to ``out``: ONNX + facematch metadata (with ``calibration``, its
    operating points, when given), checked by ``onnx.checker``, written atomically (a reader never sees
    half a file)."""
    import onnx

    from facematch.utils.io import atomic_write_bytes

    proto = module_to_onnx(model.module, tuple(model.spec.input_size), opset=opset)
    meta = export_metadata(model, proto, calibration, calibration_notes)
    set_metadata(proto, meta)
    onnx.checker.check_model(proto)  # in memory: under the 2 GB protobuf limit (the largest backbone: ~95 MB)
    data = proto.SerializeToString()
    path = atomic_write_bytes(Path(out).expanduser(), data)
    return Exported(path, len(data), meta)
