"""Torch datasets over pair / triplet rows and labelled images; each item is a preprocessed crop."""

from __future__ import annotations

import random
from typing import Callable

import torch
from torch.utils.data import Dataset

from facematch.data import sampling
from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import identity_of


class CropDataset(Dataset):
    """Items built from crops read through ``source`` (or cached features), each passed through ``transform``."""

    def __init__(self, source: Callable, transform: Callable, labels: dict[str, int] | None = None):
        self.source = source
        self.transform = transform
        self.labels = labels or {}

    def image(self, rel: str) -> torch.Tensor:
        return self.transform(self.source(rel))

    def label(self, rel: str) -> int:
        return self.labels.get(identity_of(rel), -1)


class _Rows(CropDataset):
    """A dataset over pair or triplet rows."""

    def __init__(self, rows: list, source, transform, labels=None):
        super().__init__(source, transform, labels)
        self.rows = rows

    def __len__(self):
        return len(self.rows)


class PairDataset(_Rows):
    """Items ``(xa, xb, same, label_a, label_b)``; labels are identity indices (-1 if unknown)."""

    def __getitem__(self, i):
        p = self.rows[i]
        return (self.image(p.a), self.image(p.b), torch.tensor(float(p.same)),
                self.label(p.a), self.label(p.b))


class TripletDataset(_Rows):
    """Items ``(anchor, positive, negative)``."""

    def __getitem__(self, i):
        t = self.rows[i]
        return self.image(t.anchor), self.image(t.positive), self.image(t.negative)


class ResampledRows(torch.utils.data.Dataset):
    """Rows redrawn every epoch by ``draw(index, n, rng)`` with ``rng = Random(seed + epoch)``."""

    def __init__(self, inner: PairDataset | TripletDataset, draw, index: IdentityIndex, n: int, seed: int):
        self.inner, self.draw, self.index, self.n, self.seed = inner, draw, index, n, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.inner.rows = self.draw(self.index, self.n, random.Random(self.seed * 1000 + epoch))

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]


class ImageDataset(CropDataset):
    """Items ``(x, label)`` over every image of an index (P x K batches for online mining)."""

    def __init__(self, paths: list[str], labels: list[int], source, transform):
        super().__init__(source, transform)
        self.paths, self.targets = paths, labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.image(self.paths[i]), self.targets[i]


def images_of(ds) -> set[str]:
    """Every image a dataset can serve (for resampled rows: every image of its identity index)."""
    if isinstance(ds, ResampledRows):
        return {p for paths in ds.index.images.values() for p in paths}
    if isinstance(ds, ImageDataset):
        return set(ds.paths)
    return sampling.row_images(ds.rows)
