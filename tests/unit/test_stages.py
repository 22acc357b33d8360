"""Cutting a backbone between stages, on random weights and synthetic tensors: the stages compose to the
forward pass, a frozen trunk + its trainable tail give the backbone's output, and the activation cache
(trunk outputs on disk, tail + head run on them) gives the embeddings of the full forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facematch.embedding.embedder import Embedder
from facematch.eval.verification import trunk_and_tail
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead
from facematch.models.net import BackboneHead, EmbeddingNet

SHAPES = {"mobilefacenet": (112, 96), "inception_resnet_v1": (160, 160), "resnet50": (112, 112)}
N_STAGES = {"mobilefacenet": 20, "inception_resnet_v1": 31, "resnet50": 17}


def _randomise_bn(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics, so that a stage run in the wrong mode or order shows."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("name", list(SHAPES))
def test_stages_compose_to_the_forward_pass(name):
    torch.manual_seed(0)
    b = build_backbone(name)
    _randomise_bn(b)
    b.eval()
    assert b.n_stages == N_STAGES[name]
    x = torch.randn(2, 3, *SHAPES[name])
    with torch.no_grad():
        y = x
        for stage in b._stages:
            y = stage(y)
        torch.testing.assert_close(y, b(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,k", [("mobilefacenet", 1), ("mobilefacenet", 3), ("resnet50", 2),
                                    ("inception_resnet_v1", 3)])
def test_trunk_then_tail_is_the_backbone(name, k):
    torch.manual_seed(0)
    b = build_backbone(name, freeze=True, unfreeze_last=k)
    _randomise_bn(b)
    b.eval()
    x = torch.randn(2, 3, *SHAPES[name])
    with torch.no_grad():
        acts = b.trunk()(x)
        assert acts.dim() == 2  # flat, as the cache stores them
        torch.testing.assert_close(b.tail()(acts), b(x), rtol=0, atol=1e-5)
    # the tail holds exactly the trainable parameters, the trunk none of them
    assert {id(p) for p in b.tail().parameters()} == {id(p) for p in b.parameters() if p.requires_grad}
    assert not any(p.requires_grad for p in b.trunk().parameters())


def test_fully_frozen_trunk_is_the_backbone_itself():
    b = build_backbone("mobilefacenet", freeze=True)
    assert b.trunk() is b and isinstance(b.tail(), torch.nn.Identity)
    with pytest.raises(RuntimeError, match="frozen"):
        build_backbone("mobilefacenet").trunk()


def test_embedding_net_runs_the_tail_on_cached_activations():
    torch.manual_seed(0)
    net = EmbeddingNet(build_backbone("mobilefacenet", freeze=True, unfreeze_last=3), LinearHead(128, init="random"))
    _randomise_bn(net)
    net.eval()
    x = torch.randn(3, 3, 112, 96)
    with torch.no_grad():
        torch.testing.assert_close(net(net.backbone.trunk()(x)), net(x), rtol=0, atol=1e-5)


class _Crops:
    """An in-memory crop source (``rel -> uint8 HxWx3``), as the embedder reads a FaceSource."""

    key, root = "synthetic", None

    def __init__(self, n: int, hw=(112, 96)):
        rng = np.random.default_rng(0)
        self.crops = {f"p{i}/img.png": rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for i in range(n)}

    def __call__(self, rel):
        return self.crops[rel]


@pytest.mark.parametrize("k", [0, 2, 3])
def test_activation_cache_gives_the_full_forward_embeddings(tmp_path, k):
    torch.manual_seed(0)
    backbone = build_backbone("mobilefacenet", freeze=True, unfreeze_last=k)
    head = LinearHead(128, dim=64, init="random")
    _randomise_bn(backbone)
    model = BackboneHead(backbone, head).eval()
    source = _Crops(5)
    rels = sorted(source.crops)
    trunk, tail = trunk_and_tail(model)
    assert (trunk is backbone) == (k == 0)

    def embedder(m, t, cache):
        return Embedder(m, backbone.spec, source, tail=t, flip="concat", device="cpu", precision="fp32",
                        runtime="eager", num_workers=0, progress=False, cache_dir=cache)

    full, _ = embedder(model, None, None).embed(rels)  # images through the whole model, no cache
    computed, _ = embedder(trunk, tail, tmp_path).embed(rels)  # trunk outputs computed and cached
    cached_run = embedder(trunk, tail, tmp_path)
    cached, _ = cached_run.embed(rels)  # trunk outputs read back from the cache
    assert cached_run.stats["cache_hits"] == len(rels) and cached_run.stats["computed"] == 0
    np.testing.assert_allclose(computed, full, rtol=0, atol=1e-5)
    np.testing.assert_allclose(cached, full, rtol=0, atol=1e-5)
    assert full.shape == (5, 128)  # concat of the crop's and its mirror's 64-d projections
