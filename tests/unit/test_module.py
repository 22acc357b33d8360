"""The one SiameseModule: every batch kind -> (embeddings, labels, indices_tuple) -> miner? -> loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.miners import BatchHardMiner
from pytorch_metric_learning.reducers import MeanReducer
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from facematch.errors import FacematchError
from facematch.lit.module import SiameseModule, loss_inputs
from facematch.losses.contrastive import ContrastiveLoss
from facematch.losses.triplet import TripletMarginLoss
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead
from facematch.models.net import EmbeddingNet

D = 128  # MobileFaceNet's feature size; batches below are cached 2-D features, so the backbone never runs


def triplet_loss(margin=0.2):
    return TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=True), reducer=MeanReducer())


def module(loss, miner=None) -> SiameseModule:
    net = EmbeddingNet(build_backbone("mobilefacenet"), LinearHead(D))  # identity head: embedding = normalised x
    m = SiameseModule(net, loss, miner, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    m.logged = {}
    m.log = lambda name, value, **kw: m.logged.__setitem__(name, value)
    return m


def pair_batch(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xa, xb = torch.randn(b, D, generator=g), torch.randn(b, D, generator=g)
    same = torch.tensor([1.0, 0.0] * (b // 2))
    la = torch.arange(b)
    lb = torch.where(same.bool(), la, la + 100)
    return xa, xb, same, la, lb


def test_each_batch_kind_becomes_embeddings_labels_and_a_tuple():
    embed = lambda x: 2 * x  # noqa: E731 - any embedding; each part of a batch goes through it
    xa, xb, same, la, lb = pair_batch(4)
    emb, labels, tuples = loss_inputs((xa, xb, same, la, lb), embed)
    assert torch.equal(emb, torch.cat([2 * xa, 2 * xb])) and torch.equal(labels, torch.cat([la, lb]))
    assert [t.tolist() for t in tuples] == [[0, 2], [4, 6], [1, 3], [5, 7]]  # (a1, p, a2, n): rows i and B + i

    a, p, n = (torch.randn(3, D) for _ in range(3))
    emb, labels, tuples = loss_inputs((a, p, n), embed)
    assert torch.equal(emb, torch.cat([2 * a, 2 * p, 2 * n]))
    assert [t.tolist() for t in tuples] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5]  # anchors and positives alike, negatives apart

    x, targets = torch.randn(8, D), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb, labels, tuples = loss_inputs((x, targets), embed)
    assert torch.equal(emb, 2 * x) and labels is targets and tuples is None  # P x K: the labels decide


def test_pair_training_loss_is_hadsells_formula_row_by_row():
    m = module(ContrastiveLoss(1.0))
    xa, xb, same, la, lb = pair_batch(8)
    a, b = F.normalize(xa, dim=1), F.normalize(xb, dim=1)
    d = F.pairwise_distance(a, b, eps=1e-8)
    expected = (same * d.pow(2) + (1 - same) * F.relu(1.0 - d).pow(2)).mean()
    assert torch.equal(m.training_step((xa, xb, same, la, lb), 0), expected)


def test_fixed_triplet_loss_is_the_hand_formula():
    m = module(triplet_loss(0.2))
    a, p, n = (F.normalize(torch.randn(5, D), dim=1) for _ in range(3))
    expected = F.relu((a - p).norm(dim=1) - (a - n).norm(dim=1) + 0.2).mean()
    torch.testing.assert_close(m.training_step((a, p, n), 0), expected)


def test_a_miner_replaces_the_tuple_of_a_pk_batch():
    torch.manual_seed(0)
    x, labels = torch.randn(8, D), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    seen = []
    loss = triplet_loss(0.2)

    class Spy(torch.nn.Module):  # the loss, recording the tuple it is given
        def forward(self, emb, lab, tuples):
            seen.append(tuples)
            return loss(emb, lab, tuples)

    plain, mined = module(Spy()), module(Spy(), BatchHardMiner(distance=LpDistance(normalize_embeddings=True)))
    without, with_miner = plain.training_step((x, labels), 0), mined.training_step((x, labels), 0)
    assert seen[0] is None  # no miner: every triplet the labels allow
    a, p, n = seen[1]
    assert len(a) == 8 and torch.all(labels[a] == labels[p]) and torch.all(labels[a] != labels[n])  # hardest per anchor
    emb = F.normalize(x, dim=1)
    assert torch.equal(without, loss(emb, labels, lmu.get_all_triplets_indices(labels)))
    assert with_miner > without  # the hardest triplets cost more than the average one


def test_a_miner_on_fixed_rows_is_a_user_error():
    m = module(triplet_loss(), BatchHardMiner())
    with pytest.raises(FacematchError, match="mines P x K batches"):
        m.training_step(tuple(torch.randn(4, D) for _ in range(3)), 0)


def test_validation_pair_loss_keeps_each_losss_meaning():
    """Contrastive: the batch's own pairs; triplet: every triplet the pairs' labels allow."""
    batch = pair_batch(6, seed=3)
    xa, xb, same, la, lb = batch
    emb, labels = F.normalize(torch.cat([xa, xb]), dim=1), torch.cat([la, lb])
    contrastive, triplet = module(ContrastiveLoss(1.5)), module(triplet_loss(0.3))
    for m in (contrastive, triplet):
        m.validation_step(batch, 0)
    d = F.pairwise_distance(emb[:6], emb[6:], eps=1e-8)
    assert torch.equal(contrastive.logged["val/loss"], (same * d.pow(2) + (1 - same) * F.relu(1.5 - d).pow(2)).mean())
    expected = triplet.loss(emb, labels, lmu.get_all_triplets_indices(labels))
    assert torch.equal(triplet.logged["val/loss"], expected) and expected > 0
    assert contrastive.val_metrics.compute()["val/auc"] == triplet.val_metrics.compute()["val/auc"]  # same embeddings


def test_checkpoints_from_before_the_net_attribute_still_resume():
    m = module(ContrastiveLoss(1.0))
    old = {"state_dict": {k.removeprefix("net."): v.clone() + 1 for k, v in m.state_dict().items()}}
    assert all(k.startswith(("backbone.", "head.")) for k in old["state_dict"])
    m.on_load_checkpoint(old)
    m.load_state_dict(old["state_dict"])  # strict
    assert torch.equal(m.net.head.proj.bias, torch.ones(D))
