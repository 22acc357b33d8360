"""Losses checked on small synthetic tensors with hand-computed answers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facematch.losses.contrastive import contrastive_loss
from facematch.losses.triplet import fixed_triplet_loss, make_miner, make_triplet_loss


def unit(*v):
    return F.normalize(torch.tensor([v], dtype=torch.float32), dim=1)


def test_contrastive_hand_worked():
    a = torch.cat([unit(1, 0), unit(1, 0)])
    b = torch.cat([unit(0, 1), unit(0, 1)])  # distance sqrt(2) for both rows
    same = torch.tensor([1.0, 0.0])
    d = math.sqrt(2)
    expected_m2 = (d**2 + (2.0 - d) ** 2) / 2  # same: d^2 ; different: (m - d)^2 with m = 2
    assert math.isclose(contrastive_loss(a, b, same, 2.0).item(), expected_m2, rel_tol=1e-5)
    expected_m1 = (d**2 + 0.0) / 2  # margin 1 < d: the different pair costs nothing
    assert math.isclose(contrastive_loss(a, b, same, 1.0).item(), expected_m1, rel_tol=1e-5)


def test_triplet_fixed_hand_worked():
    loss = make_triplet_loss(margin=0.5)
    a, p, n = unit(1, 0), unit(1, 0), unit(0, 1)  # d(a,p)=0, d(a,n)=sqrt(2) -> max(0, 0 - 1.414 + 0.5) = 0
    assert fixed_triplet_loss(loss, a, p, n).item() == 0.0
    a, p, n = unit(1, 0), unit(0, 1), unit(1, 0)  # d(a,p)=sqrt(2), d(a,n)=0 -> sqrt(2) + 0.5
    assert math.isclose(fixed_triplet_loss(loss, a, p, n).item(), math.sqrt(2) + 0.5, rel_tol=1e-4)


def test_miners_pick_valid_triplets():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb = F.normalize(torch.randn(8, 16), dim=1)
    for mining in ("batch_hard", "semi_hard"):
        miner = make_miner(mining, 0.5)
        a, p, n = miner(emb, labels)
        assert torch.all(labels[a] == labels[p]) and torch.all(labels[a] != labels[n])
    a, p, n = make_miner("batch_hard", 0.5)(emb, labels)
    assert len(a) == 8  # one (hardest) triplet per anchor
    assert make_miner("none", 0.5) is None
