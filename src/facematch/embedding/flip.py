"""The flip test: a crop and its mirror image are embedded together; their outputs are combined one way."""

from __future__ import annotations

import numpy as np
import torch

from facematch.errors import FacematchError

#: ``none``: the crop only; ``sum``: crop + mirror; ``concat``: [crop, mirror] (twice the dimension).
FLIP_MODES = ("none", "sum", "concat")


def check_flip(flip: str) -> str:
    if flip not in FLIP_MODES:
        raise FacematchError(f"flip={flip!r} is unknown; choose one of: {', '.join(FLIP_MODES)}")
    return flip


def n_views(flip: str) -> int:
    """How many views of a crop a flip mode embeds: 1 (the crop) or 2 (the crop and its mirror)."""
    return 1 if check_flip(flip) == "none" else 2


def with_mirrors(x: torch.Tensor, flip: str) -> torch.Tensor:
    """An NCHW batch, followed by its horizontal mirror when ``flip`` needs it (2N rows)."""
    return x if n_views(flip) == 1 else torch.cat([x, x.flip(3)])


def combine_views(views, flip: str):
    """(N, V, D) outputs per view (tensor or array) -> (N, D') as ``flip`` says; the one place views meet."""
    check_flip(flip)
    if flip == "none":
        return views[:, 0]
    if flip == "sum":
        return views.sum(1)
    n = views.shape[0]
    return views.reshape(n, -1) if isinstance(views, np.ndarray) else views.flatten(1)
