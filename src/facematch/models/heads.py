"""The embedding head: a projection on top of the backbone features, then L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingHead(nn.Module):
    """``linear``: Linear(in, dim); ``hidden`` set: Linear -> BN -> ReLU -> Linear. Output is L2-normalised.

    ``init="identity"`` starts a square (or narrowing) linear head as the identity (a truncated one when
    ``dim < in_dim``), so fine-tuning starts from exactly the pretrained embedding instead of a random
    projection of it.

    ``center=True`` subtracts a fixed feature mean (the ``center`` buffer, set from the training images'
    backbone features before fitting, saved with the weights) before the projection: the same centring
    the LFW protocol applies at evaluation, so the head is trained in the geometry it is scored in.
    """

    def __init__(self, in_dim: int, dim: int | None = None, init: str = "identity", dropout: float = 0.0,
                 hidden: int | None = None, center: bool = False):
        super().__init__()
        self.centered = bool(center)
        self.register_buffer("center", torch.zeros(in_dim))
        dim = int(dim or in_dim)
        self.in_dim, self.dim = in_dim, dim
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        if hidden:
            self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, dim))
        else:
            self.proj = nn.Linear(in_dim, dim)
            if init == "identity":
                with torch.no_grad():
                    self.proj.weight.copy_(torch.eye(dim, in_dim))
                    self.proj.bias.zero_()
            elif init != "random":
                raise ValueError(f"head init must be identity or random, not {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(x), dim=1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before L2 normalisation. Evaluation scores this, as it scores a bare
        backbone's raw features: the LFW protocol subtracts the mean and normalises itself, so an
        untrained identity head evaluates exactly like the backbone it sits on."""
        if self.centered:
            x = x - self.center
        return self.proj(self.dropout(x))
