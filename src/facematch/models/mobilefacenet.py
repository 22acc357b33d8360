"""MobileFaceNet (Chen et al., 2018, arXiv 1804.07573): architecture only.

Written by hand because no maintained package ships this exact layout; the module names match the
CASIA-WebFace checkpoint in ``../shared/weights`` (``conv1``, ``dw_conv1``, ``blocks.N.conv.{0..7}``,
``conv2``, ``linear7``, ``linear1``) so its state dict loads with every key matched.
Input: RGB 112x96 (H x W), pixels (x - 127.5) / 128. Output: 128-d embedding (not normalised).
"""

from __future__ import annotations

from torch import nn

#: (expansion t, output channels c, repeats n, first stride s), from the paper's Table 1.
BOTTLENECK_SETTINGS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


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
    def __init__(self, embedding_dim: int = 128, input_size: tuple[int, int] = (112, 96)):
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
        """Blocks in input-to-output order, whose composition is :meth:`forward` (for unfreezing the last N
        and cutting the network between two of them)."""
        return [self.conv1, self.dw_conv1, *self.blocks, self.conv2, self.linear7,
                nn.Sequential(self.linear1, nn.Flatten(1))]

    def forward(self, x):
        x = self.dw_conv1(self.conv1(x))
        x = self.conv2(self.blocks(x))
        x = self.linear1(self.linear7(x))
        return x.flatten(1)
