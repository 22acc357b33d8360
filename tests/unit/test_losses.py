"""Losses checked on small synthetic tensors with hand-computed answers, in pml's call shape
``loss(embeddings, labels, indices_tuple)``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.reducers import MeanReducer
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from facematch.losses.contrastive import ContrastiveLoss
from facematch.losses.triplet import TripletMarginLoss


def unit(*v):
    return F.normalize(torch.tensor([v], dtype=torch.float32), dim=1)


def pairs_of(same: torch.Tensor):
    """Rows i and B + i are pair i (the layout of a pair batch): pml's (a1, p, a2, n)."""
    b = len(same)
    pos, neg = torch.nonzero(same.bool()).flatten(), torch.nonzero(~same.bool()).flatten()
    return pos, pos + b, neg, neg + b


def triplet_loss(margin):
    return TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=True), reducer=MeanReducer())


def hadsell_by_rows(a, b, same, margin):
    """The formula as it was written before the pml call shape: one term per row, then the mean."""
    d = F.pairwise_distance(a, b, eps=1e-8)
    same = same.to(d.dtype)
    return (same * d.pow(2) + (1 - same) * F.relu(margin - d).pow(2)).mean()


def test_contrastive_hand_worked():
    a = torch.cat([unit(1, 0), unit(1, 0)])
    b = torch.cat([unit(0, 1), unit(0, 1)])  # distance sqrt(2) for both rows
    emb, same = torch.cat([a, b]), torch.tensor([1.0, 0.0])
    d = math.sqrt(2)
    expected_m2 = (d**2 + (2.0 - d) ** 2) / 2  # same: d^2 ; different: (m - d)^2 with m = 2
    assert math.isclose(ContrastiveLoss(2.0)(emb, None, pairs_of(same)).item(), expected_m2, rel_tol=1e-5)
    expected_m1 = (d**2 + 0.0) / 2  # margin 1 < d: the different pair costs nothing
    assert math.isclose(ContrastiveLoss(1.0)(emb, None, pairs_of(same)).item(), expected_m1, rel_tol=1e-5)


@pytest.mark.parametrize("margin", [0.7, 1.0, 1.9])
def test_contrastive_equals_the_row_formula_exactly(margin):
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(64, 16), dim=1), F.normalize(torch.randn(64, 16), dim=1)
    b[:20] = F.normalize(a[:20] + 0.3 * torch.randn(20, 16), dim=1)  # some close pairs
    same = (torch.rand(64) < 0.5).float()
    got = ContrastiveLoss(margin)(torch.cat([a, b]), None, pairs_of(same))
    assert torch.equal(got, hadsell_by_rows(a, b, same, margin))  # bit for bit, not just close


def test_contrastive_reads_triplets_and_labels_as_pml_does():
    torch.manual_seed(1)
    emb = F.normalize(torch.randn(6, 8), dim=1)
    loss = ContrastiveLoss(1.0)
    trip = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))  # (a, p, n) -> (a, p), (a, n)
    pairs = (trip[0], trip[1], trip[0], trip[2])
    assert torch.equal(loss(emb, None, trip), loss(emb, None, pairs))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])  # no tuple: every pair the labels allow
    assert torch.equal(loss(emb, labels, None), loss(emb, labels, lmu.get_all_pairs_indices(labels)))
    empty = (torch.tensor([], dtype=torch.long),) * 4
    zero = loss(emb.requires_grad_(), None, empty)
    assert zero.item() == 0.0 and zero.requires_grad


def test_triplet_fixed_hand_worked():
    loss = triplet_loss(margin=0.5)
    idx = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    labels = torch.tensor([0, 0, 1])
    # d(a,p)=0, d(a,n)=sqrt(2) -> max(0, 0 - 1.414 + 0.5) = 0
    assert loss(torch.cat([unit(1, 0), unit(1, 0), unit(0, 1)]), labels, idx).item() == 0.0
    # d(a,p)=sqrt(2), d(a,n)=0 -> sqrt(2) + 0.5
    got = loss(torch.cat([unit(1, 0), unit(0, 1), unit(1, 0)]), labels, idx).item()
    assert math.isclose(got, math.sqrt(2) + 0.5, rel_tol=1e-4)


def test_triplet_is_pml_and_reads_labelled_pairs_as_their_labels():
    torch.manual_seed(2)
    emb = F.normalize(torch.randn(8, 8), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 4, 5])  # rows (i, 4 + i): two same pairs, two different
    ours, pml = triplet_loss(0.3), pml_losses.TripletMarginLoss(
        margin=0.3, distance=LpDistance(normalize_embeddings=True), reducer=MeanReducer())
    assert isinstance(ours, pml_losses.TripletMarginLoss)
    trip = lmu.get_all_triplets_indices(labels)
    assert torch.equal(ours(emb, labels, trip), pml(emb, labels, trip))
    # a pair tuple: every triplet the labels allow (pml would find none: no pair shares an anchor)
    same = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert pml(emb, labels, pairs_of(same)).item() == 0.0
    assert torch.equal(ours(emb, labels, pairs_of(same)), pml(emb, labels))
    assert ours(emb, labels, pairs_of(same)).item() > 0


def test_active_fraction_counts_open_hinges_and_high_margins_train_the_same_model():
    """On L2-normalised embeddings, batch-hard triplets keep every hinge open at margins 1.7 and 1.9: the
    two losses differ by the constant 0.2 and give the same gradient; at 0.2, separated people close some."""
    from pytorch_metric_learning.miners import BatchHardMiner

    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    centres = F.normalize(torch.randn(8, 16), dim=1)
    base = centres[labels] + 0.15 * torch.randn(32, 16)
    miner = BatchHardMiner(distance=LpDistance(normalize_embeddings=True))

    def run(margin):
        x = base.clone().requires_grad_(True)
        loss_fn = TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=True), reducer=MeanReducer())
        tuples = miner(x, labels)
        loss = loss_fn(x, labels, tuples)
        loss.backward()
        return loss.item(), x.grad, loss_fn.active_fraction(x, tuples)

    (l17, g17, f17), (l19, g19, f19), (_, _, f02) = run(1.7), run(1.9), run(0.2)
    assert f17 == 1.0 and f19 == 1.0 and 0.0 <= f02 < 1.0
    assert l19 - l17 == pytest.approx(0.2, abs=1e-5) and torch.allclose(g17, g19, atol=1e-7)
    loss_fn = TripletMarginLoss(margin=0.2)
    assert loss_fn.active_fraction(base, None) is None  # every valid triplet: nothing given to count
