"""The model an evaluation scores: a training checkpoint (backbone + head) or a bare backbone.

Both give an :class:`EvalModel`: a module mapping a normalised NCHW batch to features, the backbone's
:class:`~facematch.models.base.BackboneSpec`, a fingerprint of its weights (the embedding cache key)
and a JSON-ready description. Both are built the way training builds them, by instantiating config nodes.

- ``load_checkpoint_model(path)``: a checkpoint written by ``facematch-train``. The backbone and head are
  instantiated from the ``arch`` and ``head`` nodes saved in ``checkpoint["facematch"]`` (without their
  initial weights), and the state dict is loaded with ``torch.load(..., weights_only=True)``; no optimizer
  or Lightning machinery is involved. Checkpoints written before the nodes were saved (a backbone name and
  head settings) load too. Output: the head's projection before its L2 normalisation
  (:class:`~facematch.models.net.BackboneHead`), scored like raw backbone features. The fingerprint is the
  sha256 of the backbone and head weights (names, dtypes, shapes and bytes), so two files holding the same
  weights share cached embeddings.
- ``load_model(..., onnx_path)``: a file written by ``facematch-export``, run by onnxruntime
  (:func:`facematch.models.onnx_file.load_onnx_model`), with the fingerprint of the weights it came from.
- ``arch_model(arch)`` / ``build_arch_model(name, weights, pretrained)``: a backbone from an ``arch``
  config node. Output: the raw backbone features (no head: with the default identity head it would only
  L2-normalise, which the protocol does itself after the optional mean subtraction, as the reference LFW
  scripts do). The fingerprint is the sha256 of the weights file (what ``sha256sum`` prints), or of the
  state dict when there is no file (random or downloaded weights).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from facematch.config import instantiate_node
from facematch.errors import FacematchError, WeightsError
from facematch.models.base import Backbone, EvalModel
from facematch.models.net import BackboneHead, EmbeddingNet
from facematch.models.weights import torch_load_weights
from facematch.utils.io import sha256_file

BUILD_BACKBONE = "facematch.models.backbones.build_backbone"
#: the only targets a checkpoint's saved config nodes may name (a checkpoint is data, not code)
CHECKPOINT_TARGETS = "facematch.models."


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's sorted names, dtypes, shapes and raw bytes (device-independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_fingerprint(backbone: Backbone) -> tuple[str, str]:
    """``(sha256, what was hashed)``: the backbone's weights file (what ``sha256sum`` prints), or its state
    dict when it has no file (random or downloaded weights). The weights part of every embedding cache key."""
    path = getattr(backbone, "weights_path", None)
    if path:
        return sha256_file(Path(path).expanduser()), "weights_file"
    return state_dict_sha256(backbone.state_dict()), "state_dict"


def arch_model(arch: Mapping[str, Any]) -> EvalModel:
    """A bare backbone instantiated from an ``arch`` config node, as training builds it."""
    node = {"_target_": BUILD_BACKBONE, **dict(arch)}
    backbone = instantiate_node(node).eval()
    weights, pretrained = node.get("weights") or None, node.get("pretrained") or None
    fingerprint, source = weights_fingerprint(backbone)
    desc = {
        "kind": "backbone",
        "arch": backbone.spec.name,
        "weights": str(weights) if weights else None,
        "pretrained": pretrained,
        "weights_sha256": fingerprint,
        "fingerprint_of": source,
        "output": "backbone features",
        "embedding_dim": backbone.spec.embedding_dim,
        "parameters": sum(p.numel() for p in backbone.parameters()),
    }
    if not weights and not pretrained:
        desc["warning"] = "random weights (no arch.weights / arch.pretrained given)"
    return EvalModel(backbone, backbone.spec, fingerprint, desc)


def build_arch_model(name: str, weights: str | None = None, pretrained: str | None = None) -> EvalModel:
    """A bare backbone by name, with the settings of its ``conf/arch`` node."""
    return arch_model({"name": name, "weights": weights, "pretrained": pretrained})


def _checked_node(node: Any, p: Path, what: str) -> dict:
    """A config node read from a checkpoint, refused when it names a target outside facematch.models."""
    if not isinstance(node, Mapping):
        raise WeightsError(f"{p}: its saved {what} settings are not a mapping ({type(node).__name__})")
    for key, value in node.items():
        if key == "_target_" and not str(value).startswith(CHECKPOINT_TARGETS):
            raise WeightsError(f"{p}: its saved {what} names {value!r}, outside {CHECKPOINT_TARGETS}*")
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, Mapping):
                _checked_node(child, p, what)
    return dict(node)


def _checkpoint_nodes(meta: Mapping, p: Path) -> tuple[dict, dict]:
    """The ``arch`` and ``head`` config nodes of a checkpoint; older checkpoints saved a backbone name and
    the head's keyword arguments instead."""
    arch = _checked_node(meta.get("arch") or {"name": meta["backbone"]}, p, "arch")
    head = _checked_node(meta.get("head") or {}, p, "head")
    if "_target_" not in head:
        linear = not head.get("hidden")
        head = {"_target_": f"facematch.models.heads.{'LinearHead' if linear else 'MLPHead'}", "_partial_": True,
                **{k: v for k, v in head.items() if not (linear and k == "hidden")}}
    return {"_target_": BUILD_BACKBONE, **arch}, head


def _net_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` and ``head.*`` tensors of a training state dict (``net.``-prefixed since the
    module holds an EmbeddingNet; bare in older checkpoints)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("net.")
        if key.startswith(("backbone.", "head.")):
            out[key] = value
    return out


def load_checkpoint_model(path: str | os.PathLike) -> EvalModel:
    """Rebuild backbone + head from a ``facematch-train`` checkpoint (``weights_only=True``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"checkpoint not found: {p} (ckpt_path=PATH to a .ckpt file written by facematch-train)")
    ckpt = torch_load_weights(p, "checkpoint", "pass ckpt_path=PATH to a .ckpt file written by facematch-train")
    meta = ckpt.get("facematch") if isinstance(ckpt, dict) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not isinstance(state, dict) or not ("arch" in meta or "backbone" in meta):
        raise WeightsError(
            f"{p} is not a facematch-train checkpoint (no 'facematch' metadata / 'state_dict'); "
            "for a bare backbone pass arch=NAME arch.weights=PATH instead"
        )
    arch_node, head_node = _checkpoint_nodes(meta, p)
    backbone = instantiate_node(arch_node, weights=None, pretrained=None)  # the weights come from the state dict
    try:
        net = EmbeddingNet(backbone, instantiate_node(head_node))
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{p}: head settings {head_node} are not understood ({err})") from None
    module = BackboneHead(net.backbone, net.head)
    wanted = _net_weights(state)
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(wanted)), sorted(set(wanted) - set(own))
    shape = sorted(k for k in set(own) & set(wanted) if own[k].shape != wanted[k].shape)
    if missing or unexpected or shape:
        raise WeightsError(
            f"{p} does not match a {backbone.spec.name} backbone + head {head_node}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(shape)} of wrong shape (e.g. {(missing + unexpected + shape)[:3]})"
        )
    module.load_state_dict(wanted, strict=True)
    module.eval()
    fingerprint = state_dict_sha256(wanted)
    config = meta.get("config") if isinstance(meta.get("config"), dict) else None
    desc = {
        "kind": "checkpoint",
        "ckpt_path": str(p),
        "arch": backbone.spec.name,
        "head": head_node,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "state_dict_sha256": fingerprint,
        "fingerprint_of": "state_dict",
        "output": "head projection (before L2 normalisation)",
        "embedding_dim": net.head.dim,
        "parameters": sum(t.numel() for t in wanted.values()),
    }
    if config:
        desc["train_loss"] = (config.get("loss") or {}).get("_target_")
        desc["train_preprocess"] = (config.get("data") or {}).get("preprocess")
    return EvalModel(module, backbone.spec, fingerprint, desc, config, meta.get("calibration"))


def load_model(ckpt_path: str | None, arch: Mapping[str, Any] | None, onnx_path: str | None = None,
               onnx_input: Mapping[str, Any] | None = None) -> EvalModel:
    """``onnx_path`` (a ``facematch-export`` file, or any ONNX model with ``onnx_input`` stated, run by
    onnxruntime) or ``ckpt_path`` when given (not both); otherwise the ``arch`` config node."""
    if onnx_path:
        if ckpt_path:
            raise FacematchError("pass ckpt_path=PATH or onnx_path=FILE.onnx, not both")
        from facematch.models.onnx_file import load_onnx_model  # onnx and onnxruntime: read only when asked for

        return load_onnx_model(onnx_path, onnx_input)
    if ckpt_path:
        return load_checkpoint_model(ckpt_path)
    if not arch or not (arch.get("name") or arch.get("_target_")):
        raise FacematchError("nothing to evaluate: pass ckpt_path=PATH, onnx_path=FILE.onnx or arch=NAME arch.weights=PATH")
    return arch_model(arch)
