"""Margin-softmax losses with class weights (losses/margin.py), distillation (losses/distill.py) and their
weighted sum (losses/weighted.py), on synthetic tensors; how the SiameseModule treats them."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml

from facematch.data.distill import Taught
from facematch.errors import FacematchError
from facematch.lit.module import SiameseModule, loss_inputs
from facematch.losses.distill import CosineDistillLoss
from facematch.losses.margin import ClassMarginLoss
from facematch.losses.weighted import WeightedLosses
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead
from facematch.models.net import EmbeddingNet

D, C = 8, 5


def margin_loss(cls=pml.ArcFaceLoss, margin=0.5, imprint="auto", lr=None, **kw):
    unit = "cosine" if cls is pml.CosFaceLoss else "radians"  # as conf/loss/*.yaml declare them (margin_unit)
    return ClassMarginLoss(functools.partial(cls, **kw), margin=margin, margin_unit=unit, scale=16.0,
                           imprint=imprint, lr=lr)


def batch(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, D, generator=g), dim=1), torch.arange(n) % C


@pytest.mark.parametrize("cls, margin, pml_margin", [(pml.ArcFaceLoss, 0.5, 0.5), (pml.SubCenterArcFaceLoss, 0.3, 0.3),
                                                     (pml.CosFaceLoss, 0.35, 0.35)])
def test_top_level_margin_means_radians_for_arcface_and_a_cosine_for_cosface(cls, margin, pml_margin):
    loss = margin_loss(cls, margin)
    loss.bind(C, D)
    assert type(loss.inner) is cls and loss.inner.scale == 16.0
    # pml converts ArcFace's degrees to radians itself; the loss hands it degrees, so it ends at `margin`
    assert float(loss.inner.margin) == pytest.approx(pml_margin)
    if cls is pml.SubCenterArcFaceLoss:
        return
    emb, labels = batch()
    cos = emb @ F.normalize(loss.weight.detach(), dim=0)
    theta = torch.acos(cos.gather(1, labels[:, None]).clamp(-1, 1))
    # the true class's logit: s * cos(theta + m) (ArcFace; theta + m below pi here) or s * (cos(theta) - m)
    target = torch.cos(theta + margin) if cls is pml.ArcFaceLoss else torch.cos(theta) - margin
    assert (theta + margin < math.pi).all()
    expected = F.cross_entropy(cos.scatter(1, labels[:, None], target) * 16.0, labels)
    assert loss(emb, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_class_weights_get_gradients_and_an_own_learning_rate():
    loss = margin_loss(lr=0.01)
    loss.bind(C, D)
    emb, labels = batch()
    emb.requires_grad_(True)
    loss(emb, labels).backward()
    assert loss.weight.grad is not None and loss.weight.grad.abs().sum() > 0 and emb.grad.abs().sum() > 0
    assert loss.param_groups() == [{"params": [loss.weight], "lr": 0.01}]
    loss(emb.detach().bfloat16(), labels)  # bf16 embeddings (mixed precision): the weights stay float32
    assert loss.weight.dtype == torch.float32
    assert margin_loss().param_groups() == []  # unbound, or without lr: the optimizer's


@pytest.mark.parametrize("imprint, pretrained, imprinted", [("auto", True, True), ("auto", False, False),
                                                            (True, False, True), (False, True, False)])
def test_imprinting_starts_each_class_at_its_normalised_mean(imprint, pretrained, imprinted):
    means = torch.randn(C, D) * 3
    called = []
    loss = margin_loss(imprint=imprint)
    loss.bind(C, D)
    loss.imprint_from(lambda: called.append(1) or means, pretrained=pretrained)
    assert bool(called) == imprinted  # the means are computed only when used
    assert torch.allclose(loss.weight.t(), F.normalize(means, dim=1)) == imprinted


def test_imprinting_sets_every_sub_center_of_a_class():
    means = torch.randn(C, D)
    loss = margin_loss(pml.SubCenterArcFaceLoss, sub_centers=3, imprint=True)
    loss.bind(C, D)
    loss.imprint_from(lambda: means, pretrained=False)
    assert loss.weight.shape == (D, C * 3)
    for c in range(C):
        for s in range(3):  # pml's column c * sub_centers + s is sub-center s of class c
            torch.testing.assert_close(loss.weight[:, c * 3 + s], F.normalize(means[c], dim=0))
    with pytest.raises(ValueError, match="do not fit"):
        loss.set_class_weights(torch.randn(C + 1, D))


def test_unbound_class_loss_and_bad_imprint_option_say_so():
    with pytest.raises(RuntimeError, match="bind"):
        margin_loss()(*batch())
    with pytest.raises(FacematchError, match="imprint"):
        margin_loss(imprint="yes")


def test_distillation_is_one_minus_cosine_to_the_teacher():
    emb, _ = batch()
    teacher = torch.randn(10, D)
    expected = (1 - (emb * F.normalize(teacher, dim=1)).sum(1)).mean()
    assert CosineDistillLoss()(emb, None, None, teacher=teacher) == pytest.approx(expected.item(), rel=1e-6)
    assert CosineDistillLoss()(emb, None, None, teacher=emb * 3).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(RuntimeError, match="teacher"):
        CosineDistillLoss()(emb)


def test_weighted_losses_sum_their_terms_and_route_the_teacher():
    emb, labels = batch()
    teacher = torch.randn(10, D)
    arc = margin_loss()
    arc.bind(C, D)
    both = WeightedLosses({"arc": arc, "distill": CosineDistillLoss()}, {"distill": 0.25})
    expected = arc(emb, labels) + 0.25 * CosineDistillLoss()(emb, teacher=teacher)
    assert both(emb, labels, None, teacher=teacher).item() == pytest.approx(expected.item(), rel=1e-6)
    assert not both.scores_pairs and both.takes_teacher and both.param_groups() == []
    with pytest.raises(ValueError, match="unknown loss terms"):
        WeightedLosses({"arc": arc}, {"triplet": 1.0})


def module(loss) -> SiameseModule:
    net = EmbeddingNet(build_backbone("mobilefacenet"), LinearHead(128))
    m = SiameseModule(net, loss, None, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    m.logged = {}
    m.log = lambda name, value, **kw: m.logged.__setitem__(name, value)
    return m


def test_module_owns_the_class_weights_trains_them_and_skips_them_in_validation():
    loss = margin_loss(lr=0.5)
    m = module(loss)
    loss.bind(C, 128)
    assert "loss.inner.W" in m.state_dict()  # checkpointed with the module
    assert not any(k.startswith("loss") for k in m.net.state_dict())  # never part of the embedding net
    opt = m.configure_optimizers()
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5] and opt.param_groups[1]["params"] == [loss.weight]
    assert sum(len(g["params"]) for g in opt.param_groups) == len([p for p in m.parameters() if p.requires_grad])
    x, labels = torch.randn(6, 128), torch.tensor([0, 1, 2, 3, 4, 0])
    m.training_step((x, labels), 0).backward()
    assert loss.weight.grad.abs().sum() > 0
    xa, xb = torch.randn(4, 128), torch.randn(4, 128)  # validation people are not classes: no val/loss
    m.validation_step((xa, xb, torch.tensor([1.0, 0, 1, 0]), torch.arange(4) + 50, torch.arange(4) + 60), 0)
    assert "val/loss" not in m.logged


def test_a_taught_batch_brings_the_teacher_embeddings_to_the_loss():
    x, labels, teacher = torch.randn(4, 128), torch.arange(4), torch.randn(4, 128)
    emb, got, tuples = loss_inputs(Taught(x, labels, teacher), lambda v: 2 * v)
    assert torch.equal(emb, 2 * x) and got is labels and tuples is None
    m = module(CosineDistillLoss())
    expected = (1 - F.cosine_similarity(F.normalize(x, dim=1), teacher)).mean()
    assert m.training_step(Taught(x, labels, teacher), 0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_image_batches_serve_every_person_one_photo_included():
    from pathlib import Path

    from torch.utils.data import DataLoader

    from facematch.data.batches import ImageBatches
    from facematch.data.identities import IdentityIndex

    index = IdentityIndex(Path("/nowhere"), {"A": ["A/1.jpg", "A/2.jpg"], "B": ["B/1.jpg"], "C": ["C/1.jpg"]})
    ds = ImageBatches().train_set(index, None, lambda rel: torch.zeros(1), lambda x: x, {}, 8, 0)
    assert sorted(zip(ds.paths, ds.targets)) == [("A/1.jpg", 0), ("A/2.jpg", 0), ("B/1.jpg", 1), ("C/1.jpg", 2)]
    loader = ImageBatches().train_loader(ds, lambda d, **kw: DataLoader(d, batch_size=2, **kw), 2, 6, {})
    labels = torch.cat([b[1] for b in loader])
    assert len(labels) == 6 and set(labels.tolist()) == {0, 1, 2}  # 6 images: a permutation and a half
    with pytest.raises(FacematchError, match="train_list"):
        ImageBatches().list_file("pairs.txt", None)


def test_taught_images_pair_each_view_with_the_teachers_same_view():
    import numpy as np

    from facematch.data.datasets import ImageDataset, PairDataset
    from facematch.data.distill import TaughtImages, Teacher

    acts = {"A/1.jpg": np.arange(4 * 3, dtype=np.float32).reshape(4, 3)}  # 2 draws x (plain, mirror)
    teacher = {"A/1.jpg": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)}  # plain, mirror
    ds = TaughtImages(ImageDataset(["A/1.jpg"], [0], acts.__getitem__, None), teacher, views_per_draw=2)
    for _ in range(12):
        x, label, target = ds[0]
        k = int(x[0]) // 3  # which cached view was served
        assert label == 0 and torch.equal(target, torch.from_numpy(teacher["A/1.jpg"][k % 2]))
    with pytest.raises(FacematchError, match="no teacher embedding"):
        TaughtImages(ImageDataset(["B/1.jpg"], [0], acts.__getitem__, None), teacher, views_per_draw=2)

    class Rows:  # a DataModule training on pair rows
        train_set = PairDataset([], None, None)

    with pytest.raises(FacematchError, match="labelled images"):
        Teacher().attach(Rows())
