"""insightface's IResNet family, the arcface_torch backbone (``arch=iresnet50``; also ``iresnet18``,
``iresnet34``, ``iresnet100``): 112x112 input, ``arcface_112x112`` alignment (MobileFaceNet's geometry on a
112-pixel-wide crop), pixels (x - 127.5) / 127.5, 512-d output (not normalised).

Written here, not installed: no maintained package ships it. The module names are arcface_torch's
(``recognition/arcface_torch/backbones/iresnet.py`` of github.com/deepinsight/insightface), so the
``backbone.pth`` state dicts arcface_torch writes (``conv1``, ``bn1``, ``prelu``, ``layerN.M.{bn1, conv1,
bn2, prelu, conv2, bn3, downsample.0, downsample.1}``, ``bn2``, ``fc``, ``features``) load by their own key
names with strict matching: ``arch.weights=backbone.pth``. insightface publishes such files (trained on
MS1MV2/3, Glint360K, WebFace) on its own drives, outside any mirror facematch fetches from; none is available
here, so this backbone has no ``arch.pretrained`` and no row of it is more than random init until one is passed.

Each residual block is pre-activated: BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (strided in the first block
of a layer) -> BN, plus the input (through a strided 1x1 conv + BN where the shape changes). The stem keeps the
resolution (stride 1), the four layers halve it: 112 -> 7, flattened into ``fc`` (512 * 7 * 7 -> 512), then a
BatchNorm1d whose scale is fixed to 1 (``features``). Its stages (``arch.unfreeze_last=N`` trains the last N):
the stem (conv1, bn1, prelu), every block of layer1..layer4, and the head (bn2, flatten, dropout, fc, features).
"""

from __future__ import annotations

from functools import cache, partial
from types import SimpleNamespace

from facematch.models.declaration import BackboneDeclaration

INPUT_SIZE, TEMPLATE = (112, 112), "arcface_112x112"
NORM = dict(mean=(0.5,) * 3, std=(0.5,) * 3)  # on 0..1 pixels: (x / 255 - 0.5) / 0.5 = (x - 127.5) / 127.5
EMBEDDING_DIM = 512
#: blocks per layer (64, 128, 256, 512 channels), as arcface_torch builds each depth
DEPTHS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3),
          "iresnet100": (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)


@cache
def network_classes() -> SimpleNamespace:
    """``IBasicBlock`` and ``IResNet`` (torch imported here, once)."""
    from torch import nn

    def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)

    class IBasicBlock(nn.Module):
        """The pre-activated residual block, with arcface_torch's module names."""

        def __init__(self, cin: int, cout: int, stride: int = 1):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv1 = conv3x3(cin, cout)
            self.bn2 = nn.BatchNorm2d(cout)
            self.prelu = nn.PReLU(cout)
            self.conv2 = conv3x3(cout, cout, stride)
            self.bn3 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            return out + (x if self.downsample is None else self.downsample(x))

    class IResNet(nn.Module):
        def __init__(self, depths: tuple[int, int, int, int], dropout: float = 0.0,
                     embedding_dim: int = EMBEDDING_DIM, input_size: tuple[int, int] = INPUT_SIZE):
            super().__init__()
            self.conv1 = conv3x3(3, WIDTHS[0])
            self.bn1 = nn.BatchNorm2d(WIDTHS[0])
            self.prelu = nn.PReLU(WIDTHS[0])
            cin = WIDTHS[0]
            for i, (width, n) in enumerate(zip(WIDTHS, depths), start=1):
                blocks = [IBasicBlock(cin if j == 0 else width, width, 2 if j == 0 else 1) for j in range(n)]
                setattr(self, f"layer{i}", nn.Sequential(*blocks))
                cin = width
            self.bn2 = nn.BatchNorm2d(cin)
            self.dropout = nn.Dropout(dropout)
            side_h, side_w = input_size[0] // 16, input_size[1] // 16  # four stride-2 layers
            self.fc = nn.Linear(cin * side_h * side_w, embedding_dim)
            self.features = nn.BatchNorm1d(embedding_dim)
            nn.init.ones_(self.features.weight)
            self.features.weight.requires_grad_(False)  # arcface_torch trains its shift only
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, 0, 0.1)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def stages(self) -> list[nn.Module]:
            """The stem, every residual block, the head: composed in order, :meth:`forward`."""
            blocks = [b for i in range(1, 5) for b in getattr(self, f"layer{i}")]
            return [nn.Sequential(self.conv1, self.bn1, self.prelu), *blocks,
                    nn.Sequential(self.bn2, nn.Flatten(1), self.dropout, self.fc, self.features)]

        def forward(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.features(self.fc(self.dropout(self.bn2(x).flatten(1))))

    return SimpleNamespace(IBasicBlock=IBasicBlock, IResNet=IResNet)


def build(weights: str | None, pretrained: str | None, *, name: str, dropout: float = 0.0):
    """IResNet ``name`` (``iresnet50`` ...): random init, or an arcface_torch ``backbone.pth`` (``weights``)
    loaded with strict key matching."""
    from facematch.models.base import Backbone, BackboneSpec
    from facematch.models.weights import load_state_dict_file, load_strict

    net = network_classes().IResNet(DEPTHS[name], dropout=dropout)
    if pretrained:
        DECLARATIONS_BY_NAME[name].pretrained_file(pretrained)  # none published: one line naming arch.weights
    if weights:
        load_strict(net, load_state_dict_file(weights), str(weights))
    spec = BackboneSpec(name, INPUT_SIZE, TEMPLATE, embedding_dim=EMBEDDING_DIM, **NORM)
    return Backbone(spec, net, net.stages())


DECLARATIONS = tuple(
    BackboneDeclaration(name, partial(build, name=name),
                        f"insightface arcface_torch IResNet-{name[7:]}, 112x112, 512-d (arch.weights=backbone.pth)",
                        INPUT_SIZE, TEMPLATE)
    for name in DEPTHS)
DECLARATIONS_BY_NAME = {d.name: d for d in DECLARATIONS}
