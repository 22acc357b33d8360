"""The model an evaluation scores: a training checkpoint (backbone + head) or a bare backbone.

Both give an :class:`EvalModel`: a module mapping a normalised NCHW batch to features, the backbone's
:class:`~facematch.models.backbones.BackboneSpec`, a fingerprint of its weights (the embedding cache key)
and a JSON-ready description.

- ``load_checkpoint_model(path)``: a checkpoint written by ``facematch-train``. The backbone and head are
  rebuilt from ``checkpoint["facematch"]`` (backbone name, head settings) and the state dict is loaded
  with ``torch.load(..., weights_only=True)``; no weights file is read besides the checkpoint, and no
  optimizer or Lightning machinery is involved. Output: the head's projection before its L2
  normalisation (:class:`BackboneHead`), scored like raw backbone features. The
  fingerprint is the sha256 of the state dict that was loaded (names, dtypes, shapes and bytes), so two
  files holding the same weights share cached embeddings.
- ``build_arch_model(name, weights, pretrained)``: a backbone from the ``arch`` config. Output: the raw
  backbone features (no head: with the default identity head it would only L2-normalise, which the
  protocol does itself after the optional mean subtraction, as the reference LFW scripts do). The
  fingerprint is the sha256 of the weights file (what ``sha256sum`` prints), or of the state dict when
  there is no file (random or downloaded weights).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from facematch.errors import FacematchError, WeightsError
from facematch.models.backbones import Backbone, BackboneSpec, build_backbone, torch_load_weights
from facematch.models.heads import EmbeddingHead
from facematch.utils.io import sha256_file


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


class BackboneHead(nn.Module):
    """backbone -> embedding head (the inference half of :class:`facematch.lit.base.SiameseModule`)."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The head's projection before its L2 normalisation (``EmbeddingHead.project``): evaluation treats
        a trained head like a bare backbone's raw features (mean subtraction, then normalisation)."""
        feats = self.backbone(x)
        return self.head.project(feats) if hasattr(self.head, "project") else self.head(feats)


@dataclass
class EvalModel:
    module: nn.Module  # normalised NCHW float batch -> (N, D) features
    spec: BackboneSpec
    fingerprint: str  # sha256 hex, the weights part of the embedding cache key
    description: dict[str, Any] = field(default_factory=dict)
    train_config: dict | None = None  # the resolved training config, for checkpoints

    @property
    def name(self) -> str:
        return self.spec.name


def build_arch_model(name: str, weights: str | None = None, pretrained: str | None = None, **_: Any) -> EvalModel:
    """A bare backbone (``arch`` config); extra keys such as ``freeze`` are ignored for inference."""
    backbone = build_backbone(name, weights=weights or None, pretrained=pretrained or None).eval()
    fingerprint, source = weights_fingerprint(backbone)
    desc = {
        "kind": "backbone",
        "arch": name,
        "weights": str(weights) if weights else None,
        "pretrained": pretrained or None,
        "weights_sha256": fingerprint,
        "fingerprint_of": source,
        "output": "backbone features",
        "embedding_dim": backbone.spec.embedding_dim,
        "parameters": sum(p.numel() for p in backbone.parameters()),
    }
    if not weights and not pretrained:
        desc["warning"] = "random weights (no arch.weights / arch.pretrained given)"
    return EvalModel(backbone, backbone.spec, fingerprint, desc)


def load_checkpoint_model(path: str | os.PathLike) -> EvalModel:
    """Rebuild backbone + head from a ``facematch-train`` checkpoint (``weights_only=True``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"checkpoint not found: {p} (ckpt_path=PATH to a .ckpt file written by facematch-train)")
    ckpt = torch_load_weights(p, "checkpoint", "pass ckpt_path=PATH to a .ckpt file written by facematch-train")
    meta = ckpt.get("facematch") if isinstance(ckpt, dict) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not isinstance(state, dict) or "backbone" not in meta:
        raise WeightsError(
            f"{p} is not a facematch-train checkpoint (no 'facematch' metadata / 'state_dict'); "
            "for a bare backbone pass arch=NAME arch.weights=PATH instead"
        )
    backbone = build_backbone(str(meta["backbone"]))
    head_cfg = dict(meta.get("head") or {})
    try:
        head = EmbeddingHead(backbone.spec.embedding_dim, **head_cfg)
    except TypeError as err:
        raise WeightsError(f"{p}: head settings {head_cfg} are not understood ({err})") from None
    module = BackboneHead(backbone, head)
    wanted = {k: v for k, v in state.items() if k.startswith(("backbone.", "head."))}
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(wanted)), sorted(set(wanted) - set(own))
    shape = sorted(k for k in set(own) & set(wanted) if own[k].shape != wanted[k].shape)
    if missing or unexpected or shape:
        raise WeightsError(
            f"{p} does not match a {meta['backbone']} backbone + head {head_cfg}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(shape)} of wrong shape (e.g. {(missing + unexpected + shape)[:3]})"
        )
    module.load_state_dict(wanted, strict=True)
    module.eval()
    fingerprint = state_dict_sha256(wanted)
    config = meta.get("config") if isinstance(meta.get("config"), dict) else None
    desc = {
        "kind": "checkpoint",
        "ckpt_path": str(p),
        "arch": str(meta["backbone"]),
        "head": head_cfg,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "state_dict_sha256": fingerprint,
        "fingerprint_of": "state_dict",
        "output": "head projection (before L2 normalisation)",
        "embedding_dim": head.dim,
        "parameters": sum(t.numel() for t in wanted.values()),
    }
    if config:
        desc["train_loss"] = (config.get("loss") or {}).get("_target_")
        desc["train_preprocess"] = (config.get("data") or {}).get("preprocess")
    return EvalModel(module, backbone.spec, fingerprint, desc, config)


def load_model(ckpt_path: str | None, arch: Mapping[str, Any] | None) -> EvalModel:
    """``ckpt_path`` wins when given; otherwise the ``arch`` config node (name, weights, pretrained)."""
    if ckpt_path:
        return load_checkpoint_model(ckpt_path)
    if not arch or not arch.get("name"):
        raise FacematchError("nothing to evaluate: pass ckpt_path=PATH or arch=NAME arch.weights=PATH")
    return build_arch_model(str(arch["name"]), arch.get("weights"), arch.get("pretrained"))
