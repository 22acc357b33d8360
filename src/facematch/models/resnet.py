"""torchvision's ResNet-50 as a facematch backbone: random, ImageNet (``arch.pretrained=imagenet``) or a local
torchvision state dict (``arch.weights=FILE``); pooled (2048-d) or its last feature map flattened.

The crop size comes from the alignment template (``arch.template``): ``arcface_112x112`` for the aligned
LFW crops, ``box_224x224`` for loose face crops as torchvision trained it on (VGGFace2's resized crops), a
smaller ``box_SxS`` for CPU runs. ``pool=false`` keeps the 2048 x h x w map of the last stage, flattened,
as the FaceNet reproduction's head reads it (h = w = 7 at 224).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facematch.errors import FacematchError
from facematch.faces.templates import get_template
from facematch.models.backbones import IMAGENET_NORM, Backbone, BackboneSpec
from facematch.models.weights import OFFLINE_COMMAND, cached_download, load_state_dict_file, load_strict

# torchvision's ResNet50_Weights.IMAGENET1K_V1: what ``resnet50(pretrained=True)`` loaded, as the original did.
IMAGENET_WEIGHTS = "IMAGENET1K_V1"


def feature_side(side: int) -> int:
    """The side of ResNet-50's last feature map for an input side: five stride-2 steps (conv1, the
    max-pool, layer2..4), each ``(s - 1) // 2 + 1``."""
    for _ in range(5):
        side = (side - 1) // 2 + 1
    return side


def imagenet_file(timeout_s: float = 20.0):
    """torchvision's ImageNet ResNet-50 weights file (its URL, ``$TORCH_HOME/hub/checkpoints``; downloaded
    when missing)."""
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights[IMAGENET_WEIGHTS].url
    return cached_download(
        url, "the ImageNet ResNet-50 weights for arch.pretrained=imagenet",
        f"arch.pretrained=imagenet needs internet once; else fetch {url} elsewhere and pass arch.weights=FILE "
        f"(a torchvision resnet50 state dict), or train offline with: {OFFLINE_COMMAND}",
        Path(torch.hub.get_dir()) / "checkpoints", timeout_s)  # where torchvision caches it


def resnet50_backbone(weights: str | None, pretrained: str | None, template: str = "arcface_112x112",
                      pool: bool = True) -> Backbone:
    """ResNet-50 without its classifier. ``weights`` (a torchvision state dict; ``fc.*`` ignored) wins over
    ``pretrained`` (``imagenet``)."""
    from torchvision.models import resnet50

    if pretrained and pretrained != "imagenet":
        raise FacematchError(f"arch.pretrained={pretrained!r} is unknown for resnet50; choose imagenet or null "
                             "(or pass a torchvision state dict with arch.weights=FILE)")
    path = weights or (imagenet_file() if pretrained else None)
    net = resnet50(weights=None)
    net.fc = nn.Identity()  # before loading: the classifier's fc.* in the file are ignored
    if path:
        load_strict(net, load_state_dict_file(path), str(path), ignore_prefixes=("fc.",))
    size = get_template(template).size
    if pool:
        last, dim = nn.Sequential(net.layer4[-1], net.avgpool, nn.Flatten(1)), 2048
    else:
        net.avgpool = nn.Identity()  # torchvision's forward then flattens the map itself
        last, dim = nn.Sequential(net.layer4[-1], nn.Flatten(1)), 2048 * feature_side(size[0]) * feature_side(size[1])
    stages = [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool), *net.layer1, *net.layer2, *net.layer3,
              *net.layer4[:-1], last]
    spec = BackboneSpec("resnet50", size, template, embedding_dim=dim, **IMAGENET_NORM)
    return Backbone(spec, net, stages)
