"""What a training batch holds, one class per kind; ``data.batches`` (set by ``conf/loss`` and
``conf/miner``) picks one, and the DataModule asks it for the training set and loader.

- :class:`PairBatches`: ``(xa, xb, same, label_a, label_b)``: the rows of ``data.train_list``, else
  balanced same/different pairs redrawn every epoch (contrastive loss).
- :class:`TripletBatches`: ``(anchor, positive, negative)``: the rows of ``data.train_triplets``, else
  random triplets redrawn every epoch (triplet loss without a miner).
- :class:`PKBatches`: ``(x, label)`` in batches of P identities x K images (``data.pk``), for online
  miners.
- :class:`ImageBatches`: ``(x, label)``, every training image (people with one photo too) shuffled, for
  losses with class weights (ArcFace, CosFace) and distillation.
"""

from __future__ import annotations

import functools
from typing import Callable

from torch.utils.data import DataLoader, Dataset

from facematch.data.datasets import ImageDataset, PairDataset, ResampledRows, TripletDataset
from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import read_pair_list, read_triplet_list
from facematch.data.sampling import sample_pairs, sample_triplets
from facematch.errors import FacematchError


class RowBatches:
    """Batches of fixed rows (pairs or triplets): a list file's rows, or rows redrawn every epoch."""

    dataset: type[PairDataset] | type[TripletDataset]
    draw: Callable[..., list]  # (index, n, rng) -> rows
    read_rows: Callable[[str], list]  # list file -> rows

    def list_file(self, train_list: str | None, train_triplets: str | None) -> str | None:
        """The list file of training rows, if the config names one."""
        raise NotImplementedError

    def train_set(self, index: IdentityIndex, rows: list | None, source, transform, labels: dict[str, int],
                  n: int, seed: int) -> Dataset:
        """``rows`` as given (a list file's), else ``n`` rows drawn from ``index`` every epoch."""
        if rows is not None:
            return self.dataset(rows, source, transform, labels)
        return ResampledRows(self.dataset([], source, transform, labels), self.draw, index, n, seed)

    def train_loader(self, dataset: Dataset, make_loader: Callable[..., DataLoader], batch_size: int,
                     n: int, pk: dict, *, seed: int = 0, rank: int = 0, world: int = 1) -> DataLoader:
        """Shuffled rows; under DDP ``trainer=ddp`` wraps nothing, so the rows are dealt out here."""
        if world > 1:
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                         drop_last=len(dataset) > batch_size * world)
            return make_loader(dataset, sampler=sampler, drop_last=len(dataset) > batch_size * world)
        return make_loader(dataset, shuffle=True, drop_last=len(dataset) > batch_size)


class PairBatches(RowBatches):
    dataset = PairDataset
    draw = staticmethod(sample_pairs)
    read_rows = staticmethod(read_pair_list)

    def list_file(self, train_list, train_triplets):
        return train_list


class TripletBatches(RowBatches):
    """``per_class``: each epoch's draw starts with that many triplets per person as the anchor's
    (:func:`~facematch.data.sampling.sample_triplets`)."""

    dataset = TripletDataset
    read_rows = staticmethod(read_triplet_list)

    def __init__(self, per_class: int = 0):
        self.draw = functools.partial(sample_triplets, per_class=int(per_class))

    def list_file(self, train_list, train_triplets):
        return train_triplets


class PKBatches:
    """P identities x K images per batch (:class:`~facematch.data.pk_sampler.PKBatchSampler`, whole on every
    DDP rank) over every training image of a person with two or more; an epoch is ``max(P x K, n)`` images
    over all ranks together."""

    def list_file(self, train_list: str | None, train_triplets: str | None) -> None:
        if train_list or train_triplets:
            raise FacematchError(
                "P x K batches (a miner) draw from the identity index, not from data.train_list / "
                "data.train_triplets; use miner=none for a list, or a data option without one"
            )
        return None

    def train_set(self, index: IdentityIndex, rows: None, source, transform, labels: dict[str, int],
                  n: int, seed: int) -> Dataset:
        paths, targets = index.with_min_images(2).paths_and_labels()
        return ImageDataset(paths, targets, source, transform)

    def train_loader(self, dataset: ImageDataset, make_loader: Callable[..., DataLoader], batch_size: int,
                     n: int, pk: dict, *, seed: int = 0, rank: int = 0, world: int = 1) -> DataLoader:
        from facematch.data.pk_sampler import PKBatchSampler

        p, k = int(pk["p"]), int(pk["k"])
        sampler = PKBatchSampler(dataset.targets, p, k, batches=max(p * k, n) // (p * k * world), seed=seed,
                                 num_replicas=world, rank=rank)
        return make_loader(dataset, batch_sampler=sampler, batch_size=None)


class ImageBatches(PKBatches):
    """Shuffled labelled images, every training image of every person (one photo is enough); an epoch is
    ``n`` images (``data.train_samples``; a new permutation each time the images run out)."""

    def list_file(self, train_list: str | None, train_triplets: str | None) -> None:
        if train_list or train_triplets:
            raise FacematchError("this loss trains on labelled images drawn from the identity index, not on "
                                 "data.train_list / data.train_triplets; drop the list, or use loss=contrastive | triplet")
        return None

    def train_set(self, index: IdentityIndex, rows: None, source, transform, labels: dict[str, int],
                  n: int, seed: int) -> Dataset:
        paths, targets = index.paths_and_labels()
        return ImageDataset(paths, targets, source, transform)

    def train_loader(self, dataset: ImageDataset, make_loader: Callable[..., DataLoader], batch_size: int,
                     n: int, pk: dict, *, seed: int = 0, rank: int = 0, world: int = 1) -> DataLoader:
        import torch
        from torch.utils.data import DistributedSampler, RandomSampler

        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        else:
            sampler = RandomSampler(dataset, num_samples=max(int(n), batch_size),
                                    generator=torch.Generator().manual_seed(seed))
        return make_loader(dataset, sampler=sampler, drop_last=True)
