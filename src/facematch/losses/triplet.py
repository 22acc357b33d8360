"""Triplet margin loss: pytorch-metric-learning's, reading labelled pairs as their labels.

``TripletMarginLoss`` (Euclidean distance on L2-normalised embeddings, mean over triplets: set in
``conf/loss/triplet.yaml``) takes explicit triplets ``(a, p, n)`` (fixed triplets, or a miner's), or
no tuple (every valid triplet the labels allow). Given a pair tuple ``(a1, p, a2, n)``, as a labelled
validation pair batch brings, pml would keep only triplets whose positive and negative pair share an
anchor, and a pair batch has none; this subclass scores every triplet the batch's labels allow instead.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses


class TripletMarginLoss(losses.TripletMarginLoss):
    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        if indices_tuple is not None and len(indices_tuple) == 4 and labels is not None:
            indices_tuple = None
        return super().compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    @torch.no_grad()
    def active_fraction(self, embeddings: torch.Tensor, indices_tuple) -> torch.Tensor | None:
        """The fraction of the given triplets ``(a, p, n)`` whose hinge is open (d(a,p) - d(a,n) + margin > 0),
        i.e. that give a gradient; None for other tuples. On L2-normalised embeddings distances lie in [0, 2],
        and batch-hard triplets (closest negative, farthest positive) rarely close a hinge: while every one is
        open the loss is mean(d(a,p) - d(a,n)) + margin, and any two such margins train the same model
        (logged as ``train/active_triplets``: 1.0 in every epoch of the from-scratch rows, margins 0.7 to 1.9)."""
        if indices_tuple is None or len(indices_tuple) != 3 or len(indices_tuple[0]) == 0:
            return None
        a, p, n = indices_tuple
        dist = self.distance(embeddings.float())
        violation = self.distance.margin(dist[a, p], dist[a, n]) + self.margin
        return (violation > 0).float().mean()
