"""torchvision's ResNet-50 as a facematch backbone (``arch=resnet50``): random, ImageNet
(``arch.pretrained=imagenet``) or a local torchvision state dict (``arch.weights=FILE``); ImageNet
normalisation; pooled (2048-d) or its last feature map flattened.

The crop size comes from the alignment template (``arch.template``): ``arcface_112x112`` for the aligned
LFW crops, ``box_224x224`` for loose face crops as torchvision trained it on (VGGFace2's resized crops), a
smaller ``box_SxS`` for CPU runs. ``pool=false`` keeps the 2048 x h x w map of the last stage, flattened,
as the FaceNet reproduction's head reads it (h = w = 7 at 224). Its 17 stages (``arch.unfreeze_last=N``):
the stem (conv1, bn1, ReLU, max-pool), the 16 bottleneck blocks of layer1..layer4 (the last with the pool).
"""

from __future__ import annotations

from pathlib import Path

from facematch.models.declaration import BackboneDeclaration

# torchvision's ResNet50_Weights.IMAGENET1K_V1: what ``resnet50(pretrained=True)`` loaded, as the original did.
IMAGENET_WEIGHTS = "IMAGENET1K_V1"


def feature_side(side: int) -> int:
    """The side of ResNet-50's last feature map for an input side: five stride-2 steps (conv1, the
    max-pool, layer2..4), each ``(s - 1) // 2 + 1``."""
    for _ in range(5):
        side = (side - 1) // 2 + 1
    return side


def imagenet_file(timeout_s: float = 20.0) -> Path:
    """torchvision's ImageNet ResNet-50 weights file (its URL, ``$TORCH_HOME/hub/checkpoints``; downloaded
    when missing)."""
    import torch
    from torchvision.models import ResNet50_Weights

    from facematch.models.weights import OFFLINE_COMMAND, cached_download

    url = ResNet50_Weights[IMAGENET_WEIGHTS].url
    return cached_download(
        url, "the ImageNet ResNet-50 weights for arch.pretrained=imagenet",
        f"arch.pretrained=imagenet needs internet once; else fetch {url} elsewhere and pass arch.weights=FILE "
        f"(a torchvision resnet50 state dict), or train offline with: {OFFLINE_COMMAND}",
        Path(torch.hub.get_dir()) / "checkpoints", timeout_s)  # where torchvision caches it


def build(weights: str | None, pretrained: str | None, template: str = "arcface_112x112", pool: bool = True):
    """ResNet-50 without its classifier. ``weights`` (a torchvision state dict; ``fc.*`` ignored) wins over
    ``pretrained`` (``imagenet``)."""
    from torch import nn
    from torchvision.models import resnet50

    from facematch.faces.templates import get_template
    from facematch.models.base import IMAGENET_NORM, Backbone, BackboneSpec
    from facematch.models.weights import load_state_dict_file, load_strict

    path = weights or (DECLARATION.pretrained_file(pretrained) if pretrained else None)
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


DECLARATION = BackboneDeclaration(
    "resnet50", build, "torchvision ResNet-50 trunk, crop from arch.template, 2048-d (ImageNet weights)",
    pretrained={"imagenet": imagenet_file})
DECLARATIONS = (DECLARATION,)
