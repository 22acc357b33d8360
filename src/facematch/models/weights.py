"""Reading weights files: ``torch.load`` with ``weights_only=True`` only, a state dict out of the usual
checkpoint layouts, and a strict load whose mismatch is one line naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from facematch.errors import WeightsError


def torch_load_weights(p: Path, what: str, fix: str):
    """``torch.load(p, weights_only=True)`` on CPU; any failure (pickle errors, truncated files, pickles
    that are not weights) becomes one :class:`WeightsError` line: "cannot load <what> <file>: <cause>; <fix>"."""
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise WeightsError(f"cannot load {what} {p}: {first}; {fix}") from None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict (or a checkpoint holding one under a known key) with ``weights_only=True``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p} (check arch.weights=PATH)")
    obj = torch_load_weights(p, "weights from", "pass a PyTorch state-dict file")
    for key in ("net_state_dict", "state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p} holds no state dict of tensors; pass a PyTorch state-dict file")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], source: str, ignore_prefixes=()) -> None:
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape:
        def few(keys):
            return ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")

        raise WeightsError(
            f"{source} does not match {type(net).__name__}: {len(missing)} missing ({few(missing)}), "
            f"{len(unexpected)} unexpected ({few(unexpected)}), {len(shape)} of wrong shape ({few(shape)}); "
            "pass weights of this architecture"
        )
    net.load_state_dict(state, strict=True)
