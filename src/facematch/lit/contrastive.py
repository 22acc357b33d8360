"""Contrastive (Siamese pair) training: batches of (xa, xb, same, ...) pairs."""

from __future__ import annotations

from facematch.lit.base import SiameseModule
from facematch.losses.contrastive import contrastive_loss


class ContrastiveModule(SiameseModule):
    sampling = "pairs"

    def training_loss(self, batch):
        xa, xb, same = batch[0], batch[1], batch[2]
        return contrastive_loss(self(xa), self(xb), same, self.margin)

    def pair_loss(self, ea, eb, same, la, lb):
        return contrastive_loss(ea, eb, same, self.margin)
