"""Backbones, heads and the embedding net on random weights and synthetic tensors: shapes, specs, strict
weight loading, freezing; checkpoints may only name facematch models. The MobileFaceNet weights on real
faces: tests/integration/test_models.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facematch.errors import WeightsError
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead, MLPHead
from facematch.models.loading import load_checkpoint_model
from facematch.models.net import BackboneHead, EmbeddingNet


@pytest.mark.parametrize(
    "name,hw,dim,template",
    [("mobilefacenet", (112, 96), 128, "sphereface_112x96"),
     ("inception_resnet_v1", (160, 160), 512, "facenet_160"),
     ("resnet50", (112, 112), 2048, "arcface_112x112")],
)
def test_backbone_interface(name, hw, dim, template):
    b = build_backbone(name).eval()
    assert b.spec.input_size == hw and b.spec.embedding_dim == dim and b.spec.template == template
    with torch.no_grad():
        out = b(torch.randn(2, 3, *hw))
    assert out.shape == (2, dim)


def test_freeze_trains_only_last_stages():
    b = build_backbone("mobilefacenet", freeze=True, unfreeze_last=2)
    trainable = [n for n, p in b.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("net.linear7", "net.linear1")) for n in trainable)
    b.train()
    assert not b.net.conv1.bn.training  # frozen BatchNorm keeps its running statistics
    assert b.net.linear1.bn.training
    full = build_backbone("mobilefacenet", freeze=True)
    assert full.fully_frozen


def test_local_weights_roundtrip_and_mismatch(tmp_path):
    src = build_backbone("inception_resnet_v1")
    sd = {f"{k}": v for k, v in src.net.model.state_dict().items()}
    sd["logits.weight"] = torch.zeros(8631, 512)  # facenet-pytorch files carry a classifier: ignored
    path = tmp_path / "irv1.pt"
    torch.save(sd, path)
    dst = build_backbone("inception_resnet_v1", weights=str(path))
    assert torch.equal(dst.net.model.conv2d_1a.conv.weight, src.net.model.conv2d_1a.conv.weight)
    with pytest.raises(WeightsError, match="does not match"):
        build_backbone("mobilefacenet", weights=str(path))


def test_bad_weight_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_backbone("mobilefacenet", weights=str(tmp_path / "nope.ckpt"))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load weights"):
        build_backbone("mobilefacenet", weights=str(junk))


def test_pretrained_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="arch.weights=FILE"):
        build_backbone("inception_resnet_v1", pretrained="vggface2")


def test_identity_head_keeps_embedding_direction():
    x = torch.randn(4, 128)
    head = LinearHead(128, init="identity")
    assert torch.allclose(head(x), F.normalize(x, dim=1), atol=1e-6)
    assert torch.equal(head.project(x), x)  # before normalisation: exactly the features
    narrow = LinearHead(512, dim=64)  # truncated identity: the first 64 features
    x = torch.randn(3, 512)
    assert torch.equal(narrow.project(x), x[:, :64])
    assert LinearHead(512, dim=64, init="random")(x).norm(dim=1).allclose(torch.ones(3))
    with pytest.raises(ValueError, match="identity or random"):
        LinearHead(8, init="orthogonal")


def test_centered_head_subtracts_its_centre_only_when_asked():
    x, mean = torch.randn(5, 16), torch.randn(16)
    centred, plain = LinearHead(16, center=True), LinearHead(16)
    for head in (centred, plain):
        head.set_center(mean)
    assert torch.allclose(centred.project(x), x - mean) and torch.equal(plain.project(x), x)
    assert torch.equal(centred.state_dict()["center"], mean)  # saved with the weights


def test_mlp_head_shapes_and_state_dict_names():
    head = MLPHead(128, dim=32, hidden=64).eval()
    assert head(torch.randn(4, 128)).shape == (4, 32) and head.dim == 32
    assert {"center", "proj.0.weight", "proj.1.running_mean", "proj.3.weight"} <= set(head.state_dict())


def test_embedding_net_builds_its_head_for_the_backbone():
    backbone = build_backbone("mobilefacenet").eval()
    net = EmbeddingNet(backbone, lambda in_dim: LinearHead(in_dim, dim=64, init="random")).eval()
    assert net.head.in_dim == backbone.spec.embedding_dim == 128 and net.spec is backbone.spec
    x = torch.randn(2, 3, 112, 96)
    with torch.no_grad():
        feats = backbone(x)
        assert torch.allclose(net(x), F.normalize(net.head.project(feats), dim=1))
        assert torch.equal(net(feats), net.head(feats))  # cached 2-D features go straight to the head
        assert torch.equal(BackboneHead(net.backbone, net.head)(x), net.project(x))


def test_checkpoint_config_nodes_may_only_name_facematch_models(tmp_path):
    state = {f"backbone.{k}": v for k, v in build_backbone("mobilefacenet").state_dict().items()}
    for meta in ({"arch": {"_target_": "os.system", "command": "true"}},
                 {"backbone": "mobilefacenet", "head": {"_target_": "builtins.print", "_partial_": True}},
                 {"backbone": "mobilefacenet", "head": {"_target_": "facematch.models.heads.LinearHead",
                                                        "init": {"_target_": "os.getcwd"}}}):
        ckpt = tmp_path / "evil.ckpt"
        torch.save({"state_dict": state, "facematch": meta}, ckpt)
        with pytest.raises(WeightsError, match=r"outside facematch\.models\.\*"):
            load_checkpoint_model(ckpt)
