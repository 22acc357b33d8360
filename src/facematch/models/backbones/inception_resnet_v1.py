"""facenet-pytorch's Inception-ResNet-v1 (``arch=inception_resnet_v1``): 160x160 input, ``facenet_160``
alignment, pixels (x - 127.5) / 128, 512-d output (without facenet-pytorch's final L2 normalisation: the
head normalises). Named weights: ``vggface2``, ``casia-webface``, downloaded by facenet-pytorch's URLs.

Its 31 stages (``arch.unfreeze_last=N`` trains the last N): conv2d_1a, 2a, 2b (+ max-pool), 3b, 4a, 4b, the
5 blocks of repeat_1, mixed_6a, the 10 of repeat_2, mixed_7a, the 5 of repeat_3, block8 (+ average pool,
dropout), last_linear, last_bn.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from facematch.models.declaration import BackboneDeclaration

INPUT_SIZE, TEMPLATE = (160, 160), "facenet_160"
URLS = {
    "vggface2": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
    "casia-webface": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180408-102900-casia-webface.pt",
}
#: the forward pass, in order: facenet-pytorch's own, up to its last_bn (no L2 normalisation, no logits)
FORWARD = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b", "repeat_1",
           "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a", "dropout")


def pretrained_file(name: str, timeout_s: float = 20.0) -> Path:
    """The cached facenet-pytorch weights file (where facenet-pytorch caches it: ``$TORCH_HOME/checkpoints``),
    downloading it (bounded by a timeout) when missing. Offline, one line naming ``arch.weights=FILE`` and
    the command that trains offline."""
    import torch

    from facematch.models.weights import OFFLINE_COMMAND, cached_download

    url = URLS[name]
    return cached_download(
        url, f"the {name} Inception-ResNet-v1 weights",
        f"fetch {url} on a machine with internet and pass arch.weights=FILE, or train offline with: {OFFLINE_COMMAND}",
        Path(torch.hub.get_dir()).parent / "checkpoints", timeout_s)


def build(weights: str | None, pretrained: str | None):
    from facenet_pytorch import InceptionResnetV1
    from torch import nn

    from facematch.models.base import FACENET_NORM, Backbone, BackboneSpec
    from facematch.models.weights import load_state_dict_file, load_strict

    class _Embed(nn.Module):
        """facenet-pytorch's model without its final L2 normalisation (the head normalises)."""

        def __init__(self):
            super().__init__()
            self.model = InceptionResnetV1(pretrained=None, classify=False)

        def forward(self, x):
            m = self.model
            for name in FORWARD:
                x = getattr(m, name)(x)
            return m.last_bn(m.last_linear(x.flatten(1)))

    net = _Embed()
    path = weights or (DECLARATION.pretrained_file(pretrained) if pretrained else None)
    if path:
        load_strict(net.model, load_state_dict_file(path), str(path), ignore_prefixes=("logits.",))
    m = net.model
    stages = [m.conv2d_1a, m.conv2d_2a, nn.Sequential(m.conv2d_2b, m.maxpool_3a), m.conv2d_3b, m.conv2d_4a,
              m.conv2d_4b, *m.repeat_1, m.mixed_6a, *m.repeat_2, m.mixed_7a, *m.repeat_3,
              nn.Sequential(m.block8, m.avgpool_1a, m.dropout, nn.Flatten(1)), m.last_linear, m.last_bn]
    spec = BackboneSpec("inception_resnet_v1", INPUT_SIZE, TEMPLATE, embedding_dim=512, **FACENET_NORM)
    return Backbone(spec, net, stages)


DECLARATION = BackboneDeclaration(
    "inception_resnet_v1", build, "facenet-pytorch Inception-ResNet-v1, 160x160, 512-d (VGGFace2 / CASIA-WebFace)",
    INPUT_SIZE, TEMPLATE, pretrained={name: partial(pretrained_file, name) for name in URLS})
DECLARATIONS = (DECLARATION,)
