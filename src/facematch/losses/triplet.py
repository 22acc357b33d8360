"""Triplet loss and online mining, as thin wrappers over pytorch-metric-learning.

- Fixed triplets: ``TripletMarginLoss`` with an explicit ``indices_tuple`` (anchor, positive, negative).
- Online mining in P x K batches (FaceNet): ``BatchHardMiner`` (hardest positive and negative per
  anchor) or ``TripletMarginMiner(type_of_triplets="semihard")`` (d(a,p) < d(a,n) < d(a,p) + margin).
Distances are Euclidean on L2-normalised embeddings; the loss is the plain mean over triplets.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses, miners, reducers
from pytorch_metric_learning.distances import LpDistance

MININGS = ("none", "batch_hard", "semi_hard")


def make_triplet_loss(margin: float) -> losses.TripletMarginLoss:
    return losses.TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=True),
                                    reducer=reducers.MeanReducer())


def make_miner(mining: str, margin: float):
    if mining == "batch_hard":
        return miners.BatchHardMiner(distance=LpDistance(normalize_embeddings=True))
    if mining == "semi_hard":
        return miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard",
                                         distance=LpDistance(normalize_embeddings=True))
    if mining == "none":
        return None
    raise ValueError(f"mining must be one of {MININGS}, not {mining!r}")


def fixed_triplet_loss(loss_fn, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Loss over the given triplets (row i of a, p, n), through pytorch-metric-learning's indices."""
    b = a.shape[0]
    emb = torch.cat([a, p, n])
    idx = torch.arange(b, device=a.device)
    labels = torch.cat([idx, idx, idx + b])  # only used for bookkeeping; indices_tuple decides the triplets
    return loss_fn(emb, labels, indices_tuple=(idx, idx + b, idx + 2 * b))
