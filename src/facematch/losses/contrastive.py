"""Contrastive loss (Hadsell, Chopra & LeCun, 2006) with pytorch-metric-learning's call shape.

Hand-written on purpose: pytorch-metric-learning's ContrastiveLoss uses un-squared hinges
(relu(d - m_pos) and relu(m_neg - d)) and averages positives and negatives separately; the original
experiments, and this project's margin sweeps, use Hadsell's squared form with one mean over all pairs,
so the margin keeps the meaning it had there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn


class ContrastiveLoss(nn.Module):
    """``loss(embeddings, labels, indices_tuple)``: mean over pairs of d^2 (same person) and
    max(0, margin - d)^2 (different people), d = ||a - b||_2 (0..2 for unit vectors).

    The pairs come as pml does for pair losses: ``indices_tuple = (a1, p, a2, n)`` (positive pairs
    ``(a1[i], p[i])``, negative pairs ``(a2[j], n[j])``); a triplet tuple ``(a, p, n)`` gives the pairs
    ``(a, p)`` and ``(a, n)``; ``None`` gives every pair the labels allow.
    """

    def __init__(self, margin: float):
        super().__init__()
        self.margin = float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                indices_tuple: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        if indices_tuple is None and labels is None:
            raise ValueError("ContrastiveLoss needs labels or an indices_tuple")
        a1, p, a2, n = lmu.convert_to_pairs(indices_tuple, labels)
        if len(a1) + len(a2) == 0:
            return embeddings.sum() * 0.0  # no pair: zero, still attached to the graph
        d = F.pairwise_distance(embeddings[torch.cat([a1, a2])], embeddings[torch.cat([p, n])], eps=1e-8)
        d_pos, d_neg = d[: len(a1)], d[len(a1):]
        terms = torch.cat([d_pos.pow(2), F.relu(self.margin - d_neg).pow(2)])
        # in anchor order: a pair batch's row order, so the mean is summed exactly as row by row
        order = torch.argsort(torch.cat([a1, a2]), stable=True)
        return terms[order].mean()
