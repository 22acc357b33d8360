"""The network a SiameseModule trains and an evaluation scores: backbone + embedding head."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from facematch.models.base import Backbone, BackboneSpec
from facematch.models.heads import EmbeddingHead


class EmbeddingNet(nn.Module):
    """Images (B, 3, H, W), or cached flat trunk activations (B, D) of a frozen backbone, -> L2-normalised
    embeddings, times the head's ``scale``.

    ``head`` is a module or a factory ``head(in_dim=...)`` (a ``_partial_`` head config): the net passes
    the backbone's feature size, ``backbone.spec.embedding_dim``.
    """

    def __init__(self, backbone: Backbone, head: EmbeddingHead | Callable[..., EmbeddingHead]):
        super().__init__()
        self.backbone = backbone
        self.head = head if isinstance(head, nn.Module) else head(in_dim=backbone.spec.embedding_dim)

    @property
    def spec(self) -> BackboneSpec:
        return self.backbone.spec

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of images; 2-D inputs are cached: flat trunk activations of a frozen backbone
        (the fast path) go through its trainable stages only, and features (no frozen trunk) pass as they are."""
        if x.dim() != 2:
            return self.backbone(x)
        return self.backbone.tail()(x) if self.backbone.frozen else x

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before L2 normalisation (what evaluation scores)."""
        return self.head.project(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(x), dim=1) * self.head.scale


class BackboneHead(nn.Module):
    """Images -> backbone -> the head's projection before its L2 normalisation: evaluation treats a
    trained head like a bare backbone's raw features (mean subtraction, then normalisation)."""

    def __init__(self, backbone: Backbone, head: EmbeddingHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.project(self.backbone(x))
