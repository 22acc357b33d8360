"""insightface's IResNet (facematch.models.backbones.iresnet) on synthetic tensors: a state dict in
arcface_torch's own key names and shapes (what its backbone.pth holds, written out here from its layout)
loads with strict matching, a renamed key is refused, and the network maps 112x112 crops to 512-d."""

from __future__ import annotations

import pytest
import torch

from facematch.errors import FacematchError, WeightsError
from facematch.models.backbones import BACKBONES, build_backbone

#: arcface_torch's blocks per layer for each depth, and the layers' widths
DEPTHS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)


def bn(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def arcface_torch_keys(depths) -> dict[str, tuple]:
    """name -> shape of every tensor of arcface_torch's ``IResNet(IBasicBlock, depths)`` state dict."""
    keys = {"conv1.weight": (64, 3, 3, 3), **bn("bn1", 64), "prelu.weight": (64,)}
    cin = 64
    for i, (width, n) in enumerate(zip(WIDTHS, depths), start=1):
        for j in range(n):
            p, c0 = f"layer{i}.{j}", (cin if j == 0 else width)
            keys |= {**bn(f"{p}.bn1", c0), f"{p}.conv1.weight": (width, c0, 3, 3), **bn(f"{p}.bn2", width),
                     f"{p}.prelu.weight": (width,), f"{p}.conv2.weight": (width, width, 3, 3), **bn(f"{p}.bn3", width)}
            if j == 0:
                keys |= {f"{p}.downsample.0.weight": (width, c0, 1, 1), **bn(f"{p}.downsample.1", width)}
        cin = width
    return keys | {**bn("bn2", 512), "fc.weight": (512, 512 * 7 * 7), "fc.bias": (512,), **bn("features", 512)}


def arcface_torch_state(depths, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in arcface_torch_keys(depths).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


@pytest.mark.parametrize("name", list(DEPTHS))
def test_every_depth_has_arcface_torchs_key_names_and_shapes(name):
    assert BACKBONES[name].input_size == (112, 112) and BACKBONES[name].template == "arcface_112x112"
    own = {k: tuple(v.shape) for k, v in build_backbone(name).net.state_dict().items()}
    assert own == arcface_torch_keys(DEPTHS[name])


def test_an_arcface_torch_backbone_pth_loads_strictly_and_runs(tmp_path):
    state = arcface_torch_state(DEPTHS["iresnet18"])
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    backbone = build_backbone("iresnet18", weights=str(path)).eval()
    loaded = backbone.net.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], v) for k, v in state.items())
    assert backbone.weights_path == str(path)
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        out = backbone(x)
        staged = x
        for stage in backbone._stages:
            staged = stage(staged)
    assert out.shape == (3, 512) and torch.isfinite(out).all() and torch.allclose(staged, out, atol=1e-5)
    assert backbone.spec.embedding_dim == 512 and backbone.spec.mean == (0.5,) * 3 and backbone.spec.std == (0.5,) * 3


def test_a_state_dict_of_other_names_or_depth_is_refused(tmp_path):
    state = arcface_torch_state(DEPTHS["iresnet18"])
    renamed = {k.replace("features.", "embedding."): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(WeightsError, match="5 missing .* 5 unexpected"):
        build_backbone("iresnet18", weights=str(tmp_path / "renamed.pth"))
    torch.save(state, tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="missing .*layer"):
        build_backbone("iresnet34", weights=str(tmp_path / "r18.pth"))


def test_no_published_weights_is_one_line_naming_arch_weights():
    with pytest.raises(FacematchError, match="arch.pretrained='ms1mv3' is unknown for iresnet50.*arch.weights=FILE"):
        build_backbone("iresnet50", pretrained="ms1mv3")
