"""Embedding heads: a projection on top of the backbone features (L2 normalisation on top of that).

The head configs (``conf/head/*.yaml``) are partial: the net passes ``in_dim``, the backbone's feature
size, when it builds the head (:class:`facematch.models.net.EmbeddingNet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingHead(nn.Module):
    """What every head shares: an optional fixed centre, dropout, then the projection ``proj``.

    ``center=True`` subtracts a fixed feature mean (the ``center`` buffer, set with :meth:`set_center`
    from the training images' backbone features before fitting, saved with the weights) before the
    projection: the same centring the LFW protocol applies at evaluation, so the head is trained in the
    geometry it is scored in.

    ``scale`` (alpha) multiplies the L2-normalised embedding: distances then lie in [0, 2 * scale], so a
    triplet margin is measured against that range (FaceNet-style rows use 10). It is part of the head
    config the checkpoint keeps, so everything that rebuilds the net sees the same embeddings; cosine
    scores (evaluation, compare, the gallery) do not depend on it.
    """

    def __init__(self, in_dim: int, dim: int, proj: nn.Module, dropout: float = 0.0, center: bool = False,
                 scale: float = 1.0):
        super().__init__()
        if not float(scale) > 0:
            raise ValueError(f"head.scale must be positive, not {scale!r}")
        self.scale = float(scale)
        self.centered = bool(center)
        self.register_buffer("center", torch.zeros(in_dim))
        self.in_dim, self.dim = int(in_dim), int(dim)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.proj = proj

    def set_center(self, mean: torch.Tensor) -> None:
        """Set the centre subtracted before the projection (used only with ``center=True``)."""
        self.center.copy_(mean.to(self.center))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(x), dim=1) * self.scale

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before L2 normalisation. Evaluation scores this, as it scores a bare
        backbone's raw features: the LFW protocol subtracts the mean and normalises itself, so an
        untrained identity head evaluates exactly like the backbone it sits on."""
        if self.centered:
            x = x - self.center
        return self.proj(self.dropout(x))


class LinearHead(EmbeddingHead):
    """Linear(in_dim, dim). ``init="identity"`` starts it as the identity (a truncated one when
    ``dim < in_dim``), so fine-tuning starts from exactly the pretrained embedding instead of a random
    projection of it; ``init="random"`` keeps PyTorch's default initialisation."""

    def __init__(self, in_dim: int, dim: int | None = None, init: str = "identity", dropout: float = 0.0,
                 center: bool = False, scale: float = 1.0):
        dim = int(dim or in_dim)
        proj = nn.Linear(in_dim, dim)
        if init == "identity":
            with torch.no_grad():
                proj.weight.copy_(torch.eye(dim, in_dim))
                proj.bias.zero_()
        elif init != "random":
            raise ValueError(f"head init must be identity or random, not {init!r}")
        super().__init__(in_dim, dim, proj, dropout, center, scale)


class MLPHead(EmbeddingHead):
    """Linear(in_dim, hidden) -> BatchNorm -> ReLU -> Linear(hidden, dim), randomly initialised.

    ``init`` is accepted so that ``head=mlp`` composes with experiments that set ``head.init``; there is
    no identity MLP, so it has no effect. On a backbone whose features are its last feature map flattened
    (``arch.pool=false``), with ``hidden=1024``, ``dim=128`` and ``scale=10``, this is the FaceNet
    reproduction's head (``head=facenet``).
    """

    def __init__(self, in_dim: int, dim: int | None = 128, hidden: int = 512, dropout: float = 0.0,
                 center: bool = False, init: str = "random", scale: float = 1.0):
        dim = int(dim or in_dim)
        proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                             nn.Linear(hidden, dim))
        super().__init__(in_dim, dim, proj, dropout, center, scale)
