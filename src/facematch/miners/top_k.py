"""The k highest-loss triplets of a batch: the FaceNet reproduction's mining (``Code/TripletGenerator.py``).

Hand-written because pytorch-metric-learning has no top-k miner (its miners keep triplets by a margin rule
or per anchor); it keeps pml's miner shape (``miner(embeddings, labels, ref_emb=None, ref_labels=None)``
returning ``(a, p, n)``) and reads distances through a pml distance object, as the losses do.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu


class TopKTripletMiner(BaseMiner):
    """Keeps the ``k`` triplets with the highest hinge loss max(0, d(a,p) - d(a,n) + margin) (all of them
    when there are ``k`` or fewer; zero-loss ones too when fewer are open, as ``torch.topk`` picks them).

    Called with labels (P x K batches), the candidates are every triplet the labels allow. On batches of
    fixed triplets, :class:`facematch.lit.module.SiameseModule` calls :meth:`select` with the batch's own
    triplets, scored without gradient and with the net in eval mode, and trains on the chosen rows only.
    """

    def __init__(self, k: int = 16, margin: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        if int(k) < 1:
            raise ValueError(f"miner.k must be at least 1, not {k!r}")
        self.k, self.margin = int(k), float(margin)

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        return self.select(embeddings, lmu.get_all_triplets_indices(labels, ref_labels), ref_emb)

    @torch.no_grad()
    def select(self, embeddings: torch.Tensor, triplets, ref_emb: torch.Tensor | None = None):
        """The ``k`` highest-loss triplets among ``triplets = (a, p, n)`` (indices into ``embeddings``; ``p``
        and ``n`` into ``ref_emb`` when given), highest first."""
        a, p, n = triplets
        dist = self.distance(embeddings, embeddings if ref_emb is None else ref_emb)
        loss = torch.relu(self.distance.margin(dist[a, p], dist[a, n]) + self.margin)
        top = torch.topk(loss, min(self.k, len(a))).indices
        return a[top], p[top], n[top]
