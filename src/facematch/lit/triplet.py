"""Triplet training: fixed (anchor, positive, negative) triplets, or online mining in P x K batches."""

from __future__ import annotations

import torch

from facematch.lit.base import SiameseModule
from facematch.losses.triplet import MININGS, fixed_triplet_loss, make_miner, make_triplet_loss


class TripletModule(SiameseModule):
    def __init__(self, *args, mining: str = "none", **kwargs):
        if mining not in MININGS:
            from facematch.errors import FacematchError

            raise FacematchError(f"loss.mining={mining!r} is unknown; choose one of: {', '.join(MININGS)}")
        super().__init__(*args, **kwargs)
        self.mining = mining
        self.sampling = "triplets" if mining == "none" else "pk"
        self.loss_fn = make_triplet_loss(self.margin)
        self.miner = make_miner(mining, self.margin)

    def training_loss(self, batch):
        if self.miner is None:
            a, p, n = batch
            return fixed_triplet_loss(self.loss_fn, self(a), self(p), self(n))
        x, labels = batch
        emb = self(x)
        return self.loss_fn(emb, labels, self.miner(emb, labels))

    def pair_loss(self, ea, eb, same, la, lb):
        """Triplet loss over every valid triplet that the pair batch's identity labels allow."""
        return self.loss_fn(torch.cat([ea, eb]), torch.cat([la, lb]))
