"""The FaceNet reproduction's pieces on synthetic tensors: the head's scale against the triplet margins, the
top-k miner, the ResNet-50 weights and flattened map, the nearest-template metric, the per-person triplet
draw."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.reducers import MeanReducer

from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import identity_of
from facematch.data.sampling import sample_triplets
from facematch.errors import WeightsError
from facematch.eval.nearest_template import draw_probes, draw_templates, template_accuracy
from facematch.miners.top_k import TopKTripletMiner
from facematch.losses.triplet import TripletMarginLoss
from facematch.models.heads import LinearHead


def _head_grads(scale: float, margin: float, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    head = LinearHead(16, 8, init="random", scale=scale)
    loss = TripletMarginLoss(margin=margin, distance=LpDistance(normalize_embeddings=False), reducer=MeanReducer())
    b = x.shape[0] // 3
    rows = torch.arange(b)
    loss(head(x), None, (rows, rows + b, rows + 2 * b)).backward()
    return torch.cat([p.grad.flatten() for p in head.parameters()])


def test_scale_separates_margins_the_unit_sphere_does_not():
    x = torch.randn(3 * 256, 16, generator=torch.Generator().manual_seed(3))
    on_sphere = [_head_grads(1.0, m, x) for m in (1.7, 1.9)]
    scaled = [_head_grads(10.0, m, x) for m in (1.7, 1.9)]
    # unit sphere: distances in [0, 2], every random triplet's hinge open at both margins: the same gradient
    assert torch.allclose(on_sphere[0], on_sphere[1], atol=1e-6)
    # radius 10: distances in [0, 20]; some triplets close at 1.7 but not at 1.9
    assert not torch.allclose(scaled[0], scaled[1], atol=1e-4)


def test_scaled_head_outputs_radius_scale():
    head = LinearHead(16, 8, init="random", scale=10.0)
    assert torch.allclose(head(torch.randn(5, 16)).norm(dim=1), torch.full((5,), 10.0), atol=1e-4)
    with pytest.raises(ValueError, match="head.scale"):
        LinearHead(16, 8, scale=0.0)


def _brute_force_top_k(emb: np.ndarray, labels: np.ndarray, margin: float, k: int) -> list[float]:
    losses = []
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] == labels[p] and labels[a] != labels[n]:
            losses.append(max(0.0, np.linalg.norm(emb[a] - emb[p]) - np.linalg.norm(emb[a] - emb[n]) + margin))
    return sorted(losses, reverse=True)[:k]


@pytest.mark.parametrize("k", [1, 16, 10_000])
def test_top_k_miner_keeps_the_k_highest_loss_triplets(k):
    gen = torch.Generator().manual_seed(k)
    emb = 3.0 * torch.randn(12, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    miner = TopKTripletMiner(k=k, margin=1.7, distance=LpDistance(normalize_embeddings=False))
    a, p, n = miner(emb, labels)
    assert (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all() and (a != p).all()
    got = (torch.relu((emb[a] - emb[p]).norm(dim=1) - (emb[a] - emb[n]).norm(dim=1) + 1.7)).tolist()
    want = _brute_force_top_k(emb.numpy(), labels.numpy(), 1.7, k)
    assert len(set(zip(a.tolist(), p.tolist(), n.tolist()))) == len(a) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_top_k_miner_select_ranks_given_triplets():
    emb = torch.tensor([[0.0], [1.0], [5.0], [0.0], [3.0], [0.5]])  # triplets (0, 1, 2) and (3, 4, 5)
    miner = TopKTripletMiner(k=1, margin=1.0, distance=LpDistance(normalize_embeddings=False))
    a, p, n = miner.select(emb, (torch.tensor([0, 3]), torch.tensor([1, 4]), torch.tensor([2, 5])))
    assert (a.tolist(), p.tolist(), n.tolist()) == ([3], [4], [5])  # loss 3 - 0.5 + 1 against 1 - 5 + 1


def test_resnet50_state_dict_loads_and_matches_torchvision(tmp_path):
    from torchvision.models import resnet50

    from facematch.models.backbones import build_backbone

    torch.manual_seed(0)
    ref = resnet50(weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "resnet50.pth")
    x = torch.randn(2, 3, 64, 64)
    flat = build_backbone("resnet50", weights=str(tmp_path / "resnet50.pth"), template="box_64x64", pool=False).eval()
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(ref.children())[:-2])(x)  # conv1 .. layer4: the 2048 x 2 x 2 map
        torch.testing.assert_close(flat(x), trunk.flatten(1))
    assert flat.spec.input_size == (64, 64) and flat.spec.embedding_dim == 2048 * 2 * 2


def test_resnet50_imagenet_offline_names_both_ways(monkeypatch, tmp_path):
    import torch

    from facematch.models.backbones import build_backbone

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as err:
        build_backbone("resnet50", pretrained="imagenet")
    assert "arch.pretrained=imagenet" in str(err.value) and "arch.weights=FILE" in str(err.value)
    assert "\n" not in str(err.value)


def _brute_force_templates(pool, pool_labels, probes, probe_labels, picks, classes):
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    templates = [np.mean([unit(pool[i]) for i in row], axis=0) for row in picks]
    hits1 = hits5 = 0
    for e, y in zip(probes, probe_labels):
        d = [np.linalg.norm(unit(e) - t) for t in templates]
        mine = d[list(classes).index(y)]
        rank = sum(v < mine for v in d)
        hits1, hits5 = hits1 + (rank < 1), hits5 + (rank < 5)
    return hits1 / len(probes), hits5 / len(probes)


def test_template_accuracy_equals_brute_force():
    rng = np.random.default_rng(4)
    pool_labels = np.repeat(np.arange(12), 6)
    pool = rng.normal(size=(72, 8)) + 2.0 * np.eye(12, 8)[pool_labels % 8]
    probe_labels = rng.integers(0, 12, 50)
    probes = rng.normal(size=(50, 8)) + 2.0 * np.eye(12, 8)[probe_labels % 8]
    res = template_accuracy(pool, pool_labels, probes, probe_labels, per_class=5, seed=7)
    classes, picks = draw_templates(pool_labels, 5, seed=7)
    assert picks.shape == (12, 5) and all((pool_labels[row] == c).all() for c, row in zip(classes, picks))
    r1, r5 = _brute_force_templates(pool, pool_labels, probes, probe_labels, picks, classes)
    assert res["template_rank_1"] == pytest.approx(r1) and res["template_rank_5"] == pytest.approx(r5)
    assert 0 < r1 < r5 < 1  # a test that can tell the two ranks apart


def test_draw_probes_takes_classes_with_two_images():
    labels = np.array(["a", "a", "b", "c", "c", "c"])
    picks = draw_probes(labels, 200, seed=1)
    assert set(labels[picks]) == {"a", "c"}


def test_triplets_per_person_then_random():
    index = IdentityIndex(root=None, images={f"p{i}": [f"p{i}/{j}.jpg" for j in range(3)] for i in range(5)})
    rows = sample_triplets(index, 12, random.Random(0), per_class=2)
    anchors = [identity_of(t.anchor) for t in rows]
    assert len(rows) == 12 and all(anchors.count(f"p{i}") >= 2 for i in range(5))
    assert all(identity_of(t.positive) == identity_of(t.anchor) != identity_of(t.negative) for t in rows)
    assert len(sample_triplets(index, 4, random.Random(0), per_class=2)) == 10  # the per-person draws come first


def test_template_report_takes_the_people_with_three_or_more():
    from facematch.eval.nearest_template import template_report

    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c", "d"]), [4, 3, 2, 5])
    emb = rng.normal(size=(14, 6))
    res = template_report(emb, labels, seed=3)
    assert res["n_templates"] == 3 and res["n_probes"] == 2000 and res["n_images"] == 12  # a, b, d
    assert 0.0 <= res["template_rank_1"] <= res["template_rank_5"] == 1.0  # 3 templates: always in the top 5


def test_module_trains_on_the_k_hardest_rows_of_a_triplet_batch():
    """SiameseModule with the top-k miner on fixed triplets: scores the batch without gradient, then
    embeds and trains on the k rows with the highest loss only (cached 2-D features: no backbone pass)."""
    from facematch.lit.module import SiameseModule
    from facematch.models.backbones import build_backbone
    from facematch.models.net import EmbeddingNet

    torch.manual_seed(1)
    net = EmbeddingNet(build_backbone("mobilefacenet"), LinearHead(128, 8, init="random", scale=10.0))
    loss = TripletMarginLoss(margin=1.7, distance=LpDistance(normalize_embeddings=False), reducer=MeanReducer())
    seen = []
    loss.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    miner = TopKTripletMiner(k=2, margin=1.7, distance=LpDistance(normalize_embeddings=False))
    m = SiameseModule(net, loss, miner, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    m.log = lambda *a, **k: None
    batch = tuple(torch.randn(5, 128) for _ in range(3))
    got = m.training_step(batch, 0)
    with torch.no_grad():
        a, p, n = (net(x) for x in batch)
        hinge = torch.relu((a - p).norm(dim=1) - (a - n).norm(dim=1) + 1.7)
    assert seen == [6] and got.item() == pytest.approx(hinge.topk(2).values.mean().item(), rel=1e-5)
