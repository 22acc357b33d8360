"""PKBatchSampler: P x K batches on every rank, disjoint identities across ranks, reproducible epochs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from facematch.data.pk_sampler import PKBatchSampler
from facematch.errors import FacematchError

# 12 identities with 1..6 images each (identity 0 has one image: K=2 must then repeat it)
LABELS = [c for c in range(12) for _ in range(1 + c % 6)]


def _batches(rank, world=2, seed=7, epoch=0, p=3, k=2, batches=4):
    s = PKBatchSampler(LABELS, p, k, batches=batches, seed=seed, num_replicas=world, rank=rank)
    s.set_epoch(epoch)
    return [[LABELS[i] for i in b] for b in s], list(s)


def test_each_batch_is_p_by_k_and_ranks_are_disjoint():
    (lab0, idx0), (lab1, idx1) = _batches(0), _batches(1)
    assert len(lab0) == len(lab1) == 4
    for a, b, ia in zip(lab0, lab1, idx0):
        for labels in (a, b):
            counts = Counter(labels)
            assert len(counts) == 3 and set(counts.values()) == {2}
        assert not set(a) & set(b)  # the two ranks' batches of one step share no identity
        for c in set(a):  # distinct images where the identity has enough
            imgs = [i for i, lab in zip(ia, a) if lab == c]
            assert len(set(imgs)) == min(2, LABELS.count(c))


def test_reproducible_from_seed_and_epoch():
    assert _batches(0)[1] == _batches(0)[1]
    assert _batches(0, epoch=1)[1] != _batches(0)[1]
    assert _batches(0, seed=8)[1] != _batches(0)[1]
    one = PKBatchSampler(LABELS, 3, 2, batches=4, seed=7)
    assert len(one) == 4 and all(len(b) == 6 for b in one)


def test_too_few_identities_is_a_user_error():
    with pytest.raises(FacematchError, match="need 3 identities per batch on each of 5 ranks"):
        PKBatchSampler(LABELS, 3, 2, batches=1, num_replicas=5)
    with pytest.raises(ValueError):
        PKBatchSampler(LABELS, 3, 2, batches=1, num_replicas=2, rank=2)


def test_datamodule_loader_uses_it(monkeypatch):
    """PKBatches builds the loader from the sampler with the rank and world it is given."""
    import torch
    from torch.utils.data import Dataset

    from facematch.data.batches import PKBatches

    class Toy(Dataset):
        targets = LABELS

        def __len__(self):
            return len(LABELS)

        def __getitem__(self, i):
            return torch.zeros(1), LABELS[i]

    def make_loader(ds, **kw):
        from torch.utils.data import DataLoader

        kw.pop("batch_size", None)
        return DataLoader(ds, **kw)

    loader = PKBatches().train_loader(Toy(), make_loader, 6, 48, {"p": 3, "k": 2}, seed=1, rank=1, world=2)
    assert len(loader) == 48 // (6 * 2)
    for _, y in loader:
        assert len(set(np.asarray(y).tolist())) == 3 and len(y) == 6


def test_row_batches_are_dealt_to_ranks():
    """Pair / triplet rows under DDP: each rank gets its own shuffled half, the halves cover every row once."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from facematch.data.batches import PairBatches

    ds = TensorDataset(torch.arange(20))

    def make_loader(d, **kw):
        return DataLoader(d, batch_size=4, **kw)

    seen = []
    for rank in (0, 1):
        loader = PairBatches().train_loader(ds, make_loader, 4, 20, {}, seed=3, rank=rank, world=2)
        seen.append([int(i) for (b,) in loader for i in b])
    assert len(seen[0]) == len(seen[1]) == 8 and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0]) != seen[0] or sorted(seen[1]) != seen[1]  # shuffled
