"""Contrastive loss on explicit pairs (Hadsell, Chopra & LeCun, 2006).

Hand-written on purpose: pytorch-metric-learning's ContrastiveLoss uses un-squared hinges
(relu(d - m_pos) and relu(m_neg - d)); the original experiments, and this project's margin sweeps,
use Hadsell's squared form, so the margin keeps the meaning it had there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(emb_a: torch.Tensor, emb_b: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """mean( same * d^2 + (1 - same) * max(0, margin - d)^2 ), d = ||a - b||_2 (0..2 for unit vectors)."""
    d = F.pairwise_distance(emb_a, emb_b, eps=1e-8)
    same = same.to(d.dtype)
    return (same * d.pow(2) + (1 - same) * F.relu(margin - d).pow(2)).mean()
