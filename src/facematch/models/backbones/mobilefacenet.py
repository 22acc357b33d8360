"""MobileFaceNet (Chen et al., 2018, arXiv 1804.07573): ``arch=mobilefacenet``, 112x96 input (H x W),
``sphereface_112x96`` alignment, pixels (x - 127.5) / 128, 128-d output (not normalised).

Written by hand because no maintained package ships this exact layout; the module names match the
CASIA-WebFace checkpoint facematch publishes (``conv1``, ``dw_conv1``, ``blocks.N.conv.{0..7}``, ``conv2``,
``linear7``, ``linear1``) so its state dict loads with every key matched. Its 20 stages
(``arch.unfreeze_last=N`` trains the last N): ``conv1``, ``dw_conv1``, the 15 bottlenecks, ``conv2``,
``linear7`` (the global depthwise conv), ``linear1`` (the 1x1 projection to 128-d).

Torch is imported when a network is built, not when this module is read (:mod:`facematch.models.declaration`).
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

from facematch.models.declaration import BackboneDeclaration
from facematch.utils.fetch import Remote

#: The CASIA-WebFace checkpoint (arch.pretrained=casia-webface): model/best/068.ckpt of
#: github.com/Xiaoccer/MobileFaceNet_Pytorch (ArcFace head on CASIA-WebFace, epoch 68), published only there.
CASIA_WEBFACE = Remote("mobilefacenet_casia_068.ckpt",
                       "e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99",
                       (("github", "model/best/068.ckpt"),))
INPUT_SIZE, TEMPLATE = (112, 96), "sphereface_112x96"
#: (expansion t, output channels c, repeats n, first stride s), from the paper's Table 1.
BOTTLENECK_SETTINGS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


@cache
def network_classes() -> SimpleNamespace:
    """``ConvBlock``, ``Bottleneck`` and ``MobileFaceNet`` (torch imported here, once)."""
    from torch import nn

    class ConvBlock(nn.Module):
        """conv (no bias) -> BN -> optional PReLU, exposed as ``conv``, ``bn``, ``prelu``."""

        def __init__(self, cin, cout, kernel, stride=1, padding=0, groups=1, act=True):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.prelu = nn.PReLU(cout) if act else None

        def forward(self, x):
            x = self.bn(self.conv(x))
            return self.prelu(x) if self.prelu is not None else x

    class Bottleneck(nn.Module):
        """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project; residual when shapes allow."""

        def __init__(self, cin, cout, stride, expansion):
            super().__init__()
            hidden = cin * expansion
            self.residual = stride == 1 and cin == cout
            self.conv = nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.PReLU(hidden),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden),
                nn.PReLU(hidden),
                nn.Conv2d(hidden, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x):
            out = self.conv(x)
            return x + out if self.residual else out

    class MobileFaceNet(nn.Module):
        def __init__(self, embedding_dim: int = 128, input_size: tuple[int, int] = INPUT_SIZE):
            super().__init__()
            self.conv1 = ConvBlock(3, 64, 3, 2, 1)
            self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, groups=64)
            blocks, cin = [], 64
            for t, c, n, s in BOTTLENECK_SETTINGS:
                for i in range(n):
                    blocks.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                    cin = c
            self.blocks = nn.Sequential(*blocks)
            self.conv2 = ConvBlock(128, 512, 1)
            # Three stride-2 stages after conv1: 112x96 -> 7x6, covered exactly by the global depthwise conv.
            gdc = (input_size[0] // 16, input_size[1] // 16)
            self.linear7 = ConvBlock(512, 512, gdc, groups=512, act=False)
            self.linear1 = ConvBlock(512, embedding_dim, 1, act=False)
            self._init_weights()

        def _init_weights(self):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def stages(self) -> list[nn.Module]:
            """Blocks in input-to-output order, whose composition is :meth:`forward` (for unfreezing the last
            N and cutting the network between two of them)."""
            return [self.conv1, self.dw_conv1, *self.blocks, self.conv2, self.linear7,
                    nn.Sequential(self.linear1, nn.Flatten(1))]

        def forward(self, x):
            x = self.dw_conv1(self.conv1(x))
            x = self.conv2(self.blocks(x))
            x = self.linear1(self.linear7(x))
            return x.flatten(1)

    return SimpleNamespace(ConvBlock=ConvBlock, Bottleneck=Bottleneck, MobileFaceNet=MobileFaceNet)


def build(weights: str | None, pretrained: str | None):
    from facematch.models.base import FACENET_NORM, Backbone, BackboneSpec
    from facematch.models.weights import load_state_dict_file, load_strict

    net = network_classes().MobileFaceNet()
    path = weights or (DECLARATION.pretrained_file(pretrained) if pretrained else None)
    if path:
        load_strict(net, load_state_dict_file(path), str(path))
    spec = BackboneSpec("mobilefacenet", INPUT_SIZE, TEMPLATE, embedding_dim=128, **FACENET_NORM)
    backbone = Backbone(spec, net, net.stages())
    backbone.weights_path = str(path) if path else None  # the published file too: its sha256 is the fingerprint
    return backbone


def casia_webface_file():
    from facematch.models.weights import published_file

    return published_file(CASIA_WEBFACE, "MobileFaceNet casia-webface", "mobilefacenet")


DECLARATION = BackboneDeclaration(
    "mobilefacenet", build, "MobileFaceNet, 112x96, 128-d (CASIA-WebFace weights published by facematch)",
    INPUT_SIZE, TEMPLATE, pretrained={"casia-webface": casia_webface_file},
    published={"mobilefacenet": CASIA_WEBFACE}, default_weights=CASIA_WEBFACE.name)
DECLARATIONS = (DECLARATION,)
