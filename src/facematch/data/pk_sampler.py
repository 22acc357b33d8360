"""P x K batches that stay whole under DDP: every batch on every rank holds exactly K images of each of P
identities, the ranks' batches of one step share no identity, and an epoch is a function of (seed, epoch).

Why not pytorch-metric-learning's ``MPerClassSampler``: it is a plain index sampler, so under DDP Lightning
wraps it in a ``DistributedSamplerWrapper`` that deals its indices out across the ranks (and reshuffles
them), and a rank's batch of ``P x K`` consecutive indices no longer holds K images of P people; nor does it
take an epoch, so every epoch repeats unless it is rebuilt. No library sampler is both P x K and
rank-aware, hence this one: a batch sampler that every rank computes identically from the seed and the
epoch, each rank keeping its own slice. The DataLoader that uses it must not be re-wrapped:
``trainer=ddp`` sets ``use_distributed_sampler: false`` (validation then runs whole on every rank, giving
every rank the same validation metrics).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from facematch.errors import FacematchError


class PKBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices: P identities x K images each, ``batches`` per rank per epoch.

    Per step, ``P x num_replicas`` distinct identities are drawn without replacement and rank ``r`` takes
    the ``r``-th block of P; each identity gives K distinct images (drawn with replacement only when it has
    fewer than K). :meth:`set_epoch` (called by Lightning each epoch) changes the draw."""

    def __init__(self, labels: Sequence[int], p: int, k: int, *, batches: int, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        if p < 1 or k < 1:
            raise FacematchError(f"data.pk.p and data.pk.k must be at least 1, got p={p}, k={k}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        labels = np.asarray(labels)
        self.identities = np.unique(labels)
        self.images = [np.flatnonzero(labels == c) for c in self.identities]
        if len(self.identities) < p * num_replicas:
            raise FacematchError(
                f"P x K batches need {p} identities per batch on each of {num_replicas} ranks "
                f"({p * num_replicas} in all), but the training set has {len(self.identities)}; lower data.pk.p"
            )
        self.p, self.k, self.batches = int(p), int(k), max(1, int(batches))
        self.seed, self.num_replicas, self.rank = int(seed), int(num_replicas), int(rank)
        self.epoch = 0
        # Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler`` (as on
        # torch's BatchSampler), never on the batch sampler itself: this one is its own sampler.
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n_ids = len(self.identities)
        for _ in range(self.batches):
            step = rng.choice(n_ids, size=self.p * self.num_replicas, replace=False)
            # every rank draws the images of every rank's identities, so the stream stays the same on all
            picks = [rng.choice(self.images[i], size=self.k, replace=len(self.images[i]) < self.k) for i in step]
            mine = picks[self.rank * self.p: (self.rank + 1) * self.p]
            yield [int(j) for block in mine for j in block]
