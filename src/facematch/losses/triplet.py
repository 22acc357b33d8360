"""Triplet margin loss: pytorch-metric-learning's, reading labelled pairs as their labels.

``TripletMarginLoss`` (Euclidean distance on L2-normalised embeddings, mean over triplets: set in
``conf/loss/triplet.yaml``) takes explicit triplets ``(a, p, n)`` (fixed triplets, or a miner's), or
no tuple (every valid triplet the labels allow). Given a pair tuple ``(a1, p, a2, n)``, as a labelled
validation pair batch brings, pml would keep only triplets whose positive and negative pair share an
anchor, and a pair batch has none; this subclass scores every triplet the batch's labels allow instead.
"""

from __future__ import annotations

from pytorch_metric_learning import losses


class TripletMarginLoss(losses.TripletMarginLoss):
    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        if indices_tuple is not None and len(indices_tuple) == 4 and labels is not None:
            indices_tuple = None
        return super().compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
