"""An ONNX face model without facematch's metadata (another project's, e.g. insightface's model zoo), run
with the input its user states: ``embed.input.*`` in ``facematch-eval``, ``--input-*`` in the tools.

The statement (:data:`INPUT_KEYS`): ``size`` (H, W; one number for a square), ``mean`` and ``std`` on the
0..255 pixel scale the model zoos state them (``(x - 127.5) / 127.5``: mean 127.5, std 127.5; one number or
one per channel, in the model's channel order), ``channels`` (RGB or BGR: the order the model takes) and
``template`` (the alignment its training crops had; insightface's: arcface_112x112). It becomes the model's
:class:`~facematch.models.base.BackboneSpec`, so the crops, the normalisation and the caches follow it
like any backbone's; the embedding size is read from the graph (or from one run when it is symbolic). The
weights' fingerprint is the sha256 of the file and the statement, so caches never mix two statements.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from facematch.errors import WeightsError
from facematch.models.base import BackboneSpec, EvalModel
from facematch.models.onnx_runtime import OnnxModule

INPUT_KEYS = ("size", "mean", "std", "channels", "template")
CHANNELS = ("RGB", "BGR")
HOW = ("state its input: embed.input.size=[112,112] embed.input.mean=127.5 embed.input.std=127.5 "
       "embed.input.channels=RGB (tools: --input-size 112 --input-mean 127.5 --input-std 127.5 --input-channels RGB), "
       "or export it with facematch-export")


def is_stated(stated: Mapping[str, Any] | None) -> bool:
    """Whether ``stated`` says anything beyond the defaults (a size, mean or std)."""
    return bool(stated) and any(stated.get(k) is not None for k in ("size", "mean", "std"))


def _triple(value, what: str, p: Path) -> list[float]:
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        vals = [float(v) for v in vals]
    except (TypeError, ValueError):
        raise WeightsError(f"{p}: input {what} {value!r} is not a number or three numbers; {HOW}") from None
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3 or (what == "std" and any(v <= 0 for v in vals)):
        raise WeightsError(f"{p}: input {what} {value!r} must be one number or three (std > 0); {HOW}")
    return vals


def check_statement(stated: Mapping[str, Any], p: Path) -> dict:
    """The statement with every key checked and filled: ``{"size": [H, W], "mean", "std" (0..255, model
    channel order), "channels", "template"}``; one-line WeightsError naming the key otherwise."""
    unknown = sorted(set(stated) - set(INPUT_KEYS))
    missing = [k for k in ("size", "mean", "std") if stated.get(k) is None]
    if unknown or missing:
        what = f"unknown input key {unknown[0]!r} (valid: {', '.join(INPUT_KEYS)})" if unknown else \
            f"no input {', '.join(missing)} stated"
        raise WeightsError(f"{p} has no facematch metadata and {what}; {HOW}")
    size = stated["size"]
    size = list(size) if isinstance(size, (list, tuple)) else [size, size]
    if len(size) != 2 or not all(str(s).isdigit() and int(s) > 0 for s in size):
        raise WeightsError(f"{p}: input size {stated['size']!r} is not H W (or one number); {HOW}")
    channels = str(stated.get("channels") or "RGB").upper()
    if channels not in CHANNELS:
        raise WeightsError(f"{p}: input channels {stated.get('channels')!r} is not one of {' | '.join(CHANNELS)}")
    template = str(stated.get("template") or "arcface_112x112")  # checked where crops are made (faces.templates)
    return {"size": [int(s) for s in size], "mean": _triple(stated["mean"], "mean", p),
            "std": _triple(stated["std"], "std", p), "channels": channels, "template": template}


def load_stated_onnx(p: Path, data: bytes, proto, stated: Mapping[str, Any], graph_io):
    """An :class:`~facematch.models.base.EvalModel` running the bare ONNX model ``p`` (``data``,
    ``proto``) on inputs made as ``stated`` says; ``graph_io`` is :func:`.onnx_file._graph_io`."""
    st = check_statement(stated, p)
    in_dims, out_dim = graph_io(proto, p)
    if len(in_dims) != 4 or (isinstance(in_dims[1], int) and in_dims[1] != 3):
        raise WeightsError(f"{p}: its input is {in_dims}, not (N, 3, H, W); facematch runs NCHW RGB/BGR models")
    fixed = [d for d in in_dims[2:] if isinstance(d, int) and d > 0]
    if len(fixed) == 2 and fixed != st["size"]:
        raise WeightsError(f"{p}: its input is {in_dims[2]}x{in_dims[3]}, the stated size {st['size'][0]}x{st['size'][1]}; "
                           "state the model's size (embed.input.size / --input-size)")
    bgr = st["channels"] == "BGR"
    order = (lambda v: v[::-1]) if bgr else (lambda v: v)  # the spec normalises RGB; the module then swaps
    fingerprint = hashlib.sha256(data + json.dumps(st, sort_keys=True).encode()).hexdigest()
    module = OnnxModule(data, fingerprint, name=str(p), bgr=bgr)
    if out_dim is None:  # a symbolic feature axis: one run tells
        out_dim = int(module(torch.zeros(1, 3, *st["size"])).shape[1])
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in p.stem)
    spec = BackboneSpec(name=f"onnx-{stem}", input_size=tuple(st["size"]), template=st["template"],
                        mean=tuple(m / 255.0 for m in order(st["mean"])), std=tuple(s / 255.0 for s in order(st["std"])),
                        embedding_dim=int(out_dim))
    desc = {"kind": "onnx", "onnx_path": str(p), "onnx_sha256": hashlib.sha256(data).hexdigest(), "arch": spec.name,
            "fingerprint_of": "the ONNX file and the stated input", "input": st, "embedding_dim": int(out_dim)}
    return EvalModel(module, spec, fingerprint, desc, None, None)
