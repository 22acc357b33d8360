"""Reading an ONNX model file into an :class:`~facematch.models.base.EvalModel` run by onnxruntime
(:class:`~facematch.models.onnx_runtime.OnnxModule`): :func:`load_onnx_model`.

A file written by ``facematch-export`` (:mod:`.onnx_export`) carries its metadata: the backbone's spec comes
from the registry, checked against it; the fingerprint and calibration are those of the weights it was
exported from. A model without that metadata runs with the input its user states (:mod:`.onnx_stated`).
Everything read from the file is bounded and checked: a bad file is one :class:`WeightsError` line.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from facematch.errors import WeightsError
from facematch.models.base import EvalModel
from facematch.models.onnx_export import FORMAT, KEYS, PREFIX
from facematch.models.onnx_runtime import OnnxModule
from facematch.models.onnx_stated import HOW, is_stated, load_stated_onnx
from facematch.utils.untrusted import GIB, inside, read_bounded

FIX = "export one with facematch-export --ckpt C | --arch A --weights W --out FILE.onnx"
#: The types of the facematch metadata a model's loading reads (a list: of numbers).
META_TYPES = {"arch": str, "input_size": list, "input_layout": str, "mean": list, "std": list, "template": str,
              "embedding_dim": int, "fingerprint": str, "description": (dict, type(None)), "calibration": (dict, type(None))}
#: A model file, and its external data with it: protobuf's own 2 GiB limit on one message.
MAX_ONNX_BYTES = 2 * GIB - 1

def read_onnx(path: str | os.PathLike, bare_ok: bool = False) -> tuple[bytes, Any, dict[str, Any]]:
    """``(bytes, onnx.ModelProto, facematch metadata)`` of ``path``; one-line WeightsError otherwise.
    ``bare_ok``: a model without facematch metadata gives ``{}`` (its input is stated instead)."""
    import onnx
    from google.protobuf.message import DecodeError


    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"ONNX model not found: {p} (--onnx / onnx_path=FILE.onnx; {FIX})")
    data = read_bounded(p, MAX_ONNX_BYTES, "ONNX model", FIX, WeightsError)
    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise WeightsError(f"{p} is not an ONNX model ({type(err).__name__}); {FIX}") from None
    if not proto.graph.node:
        raise WeightsError(f"{p} is not an ONNX model (no graph); {FIX}")
    if inline_external_data(proto, p):  # onnxruntime then gets one self-contained model, never a path
        try:
            data = proto.SerializeToString()
        except ValueError as err:  # over protobuf's 2 GiB with its external data
            raise WeightsError(f"{p} with its external data is too large for one model ({err}); {FIX}") from None
    try:
        meta = {e.key[len(PREFIX):]: json.loads(e.value) for e in proto.metadata_props if e.key.startswith(PREFIX)}
    except (ValueError, RecursionError):
        raise WeightsError(f"{p}: its facematch metadata is not JSON; {FIX}") from None
    if not meta and bare_ok:
        return data, proto, meta
    if meta.get("format") != FORMAT or any(k not in meta for k in KEYS):
        missing = [k for k in KEYS if k not in meta]
        what = f"format {meta.get('format')!r}, not {FORMAT}" if "format" in meta else "no facematch metadata"
        raise WeightsError(f"{p} has {what}{f' (missing {missing[:3]})' if missing and meta else ''}; {FIX}")
    wrong = [k for k, kind in META_TYPES.items() if not isinstance(meta[k], kind)
             or (kind is list and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in meta[k]))]
    if wrong or isinstance(meta["embedding_dim"], bool):
        raise WeightsError(f"{p}: its facematch metadata {', '.join(wrong) or 'embedding_dim'} is not of the type "
                           f"facematch-export writes; {FIX}")
    return data, proto, meta


def _tensors(nodes) -> Iterator:
    """Every tensor the nodes' attributes hold, subgraphs' initializers included (sparse ones as parts)."""
    for node in nodes:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for sp in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                yield from (sp.values, sp.indices)
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _graph_tensors(g)


def _graph_tensors(graph) -> Iterator:
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield from (sp.values, sp.indices)
    yield from _tensors(graph.node)


def inline_external_data(proto, p: Path) -> int:
    """Read every tensor of ``proto`` (model file ``p``) kept in an external-data file into the model and
    return how many. A location must be a relative path that stays inside the model's folder (no absolute
    path, no ``..``, no link out), a regular file, with the offset and length inside it, and all of them
    together under :data:`MAX_ONNX_BYTES`; anything else is one :class:`WeightsError` line."""
    from onnx import TensorProto

    tensors = [*_graph_tensors(proto.graph), *(t for f in proto.functions for t in _tensors(f.node))]
    n, total = 0, 0
    for t in tensors:
        if t.data_location != TensorProto.EXTERNAL and not len(t.external_data):
            continue
        info = {e.key: e.value for e in t.external_data}
        where = inside(p.parent, info.get("location"))
        if where is None or set(info) - {"location", "offset", "length", "checksum"} or not where.is_file():
            raise WeightsError(f"{p}: tensor {t.name[:60]!r} keeps its data in {str(info.get('location'))[:80]!r}, "
                               f"not a file inside the model's folder {p.parent}; {FIX}")
        try:
            offset, size = int(info.get("offset", 0)), where.stat().st_size
            length = int(info.get("length", size - offset))
        except ValueError:
            raise WeightsError(f"{p}: tensor {t.name[:60]!r} has a non-numeric external offset or length; {FIX}") from None
        total += length
        if offset < 0 or length < 0 or offset + length > size or total > MAX_ONNX_BYTES:
            raise WeightsError(f"{p}: tensor {t.name[:60]!r} asks for bytes {offset}..{offset + length} of "
                               f"{where.name} ({size} bytes; at most {MAX_ONNX_BYTES} in all); {FIX}")
        with open(where, "rb") as fh:
            fh.seek(offset)
            t.raw_data = fh.read(length)
        t.data_location = TensorProto.DEFAULT
        del t.external_data[:]
        n += 1
    return n


@lru_cache(maxsize=None)
def registry_spec(name: str):
    """The registry's :class:`BackboneSpec` of backbone ``name`` (built once, random init, no weights read)."""
    from facematch.models.backbones import BACKBONES, build_backbone  # building one imports torch

    if name not in BACKBONES:
        raise WeightsError(f"the ONNX model is of backbone {name!r}, unknown here (known: {', '.join(BACKBONES)})")
    return build_backbone(name).spec


def _graph_io(proto, p: Path) -> tuple[list, int | None]:
    """The graph's input shape (dims as ints or names) and output feature size (None when symbolic)."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise WeightsError(f"{p}: expected one input and one output, found {len(inputs)} and {len(proto.graph.output)}; {FIX}")

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]

    out = dims(proto.graph.output[0])
    return dims(inputs[0]), (out[1] if len(out) == 2 and isinstance(out[1], int) else None)


def load_onnx_model(path: str | os.PathLike, stated_input: Mapping[str, Any] | None = None):
    """An :class:`~facematch.models.base.EvalModel` running the ``facematch-export`` file ``path``; a model
    without facematch metadata runs with ``stated_input`` (:mod:`.onnx_stated`; the file's metadata wins)."""
    import hashlib

    p = Path(path).expanduser()
    data, proto, meta = read_onnx(p, bare_ok=True)
    if not meta:
        if not is_stated(stated_input):
            raise WeightsError(f"{p} has no facematch metadata: {HOW}")
        return load_stated_onnx(p, data, proto, stated_input, _graph_io)
    spec = registry_spec(str(meta["arch"]))
    in_dims, out_dim = _graph_io(proto, p)
    wanted = {"input_size": list(spec.input_size), "template": spec.template, "mean": list(spec.mean),
              "std": list(spec.std)}
    for key, value in wanted.items():
        if meta[key] != value and not (key in ("mean", "std") and _close(meta[key], value)):
            raise WeightsError(f"{p}: its {key} {meta[key]} is not {spec.name}'s {value} here; re-export it with facematch-export")
    if in_dims[1:] != [3, *spec.input_size] or meta["input_layout"] != "NCHW":
        raise WeightsError(f"{p}: its input is {meta['input_layout']} {in_dims}, not (N, 3, {spec.input_size[0]}, "
                           f"{spec.input_size[1]}); re-export it with facematch-export")
    dim = int(meta["embedding_dim"])
    if out_dim is not None and out_dim != dim:
        raise WeightsError(f"{p}: its graph outputs {out_dim} features but its metadata says {dim}; re-export it")
    original = meta["description"] if isinstance(meta["description"], dict) else {}
    desc = {
        "kind": "onnx",
        "onnx_path": str(p),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "arch": spec.name,
        "fingerprint_of": "the exported PyTorch weights",
        "output": original.get("output"),
        "embedding_dim": dim,
        "opset": meta["opset"],
        "exporter": meta["exporter"],
        "exported_from": original,
    }
    module = OnnxModule(data, str(meta["fingerprint"]), name=str(p))
    return EvalModel(module, spec, str(meta["fingerprint"]), desc, None, meta["calibration"] or None)


def _close(a, b, tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= tol for x, y in zip(a, b))
