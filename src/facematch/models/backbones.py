"""Backbone registry and the one interface everything else asks: input size, template, normalisation,
embedding size. Weight files are always loaded with ``weights_only=True`` (:mod:`facematch.models.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from facematch.errors import FacematchError
from facematch.models.weights import facenet_pretrained_file, load_state_dict_file, load_strict, mobilefacenet_pretrained_file


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    input_size: tuple[int, int]  # (H, W)
    template: str  # alignment template the backbone was trained on (facematch.faces.templates)
    mean: tuple[float, float, float]  # applied to pixels scaled to [0, 1]: (x/255 - mean) / std
    std: tuple[float, float, float]
    embedding_dim: int


class Stages(nn.Module):
    """A run of consecutive stages of a backbone, applied in order. ``in_shape``: inputs arrive flat
    (N, prod(in_shape)) and are reshaped first (cached trunk activations); ``flatten``: outputs leave flat."""

    def __init__(self, stages: list[nn.Module], in_shape: tuple[int, ...] | None = None, flatten: bool = False):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.in_shape = tuple(in_shape) if in_shape else None
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_shape is not None:
            x = x.reshape(x.shape[0], *self.in_shape)
        for stage in self.stages:
            x = stage(x)
        return x.flatten(1) if self.flatten else x


class Backbone(nn.Module):
    """A feature extractor with its :class:`BackboneSpec` and its stages: modules whose composition, in
    order, is the forward pass (the last one returns the (N, D) features), so the backbone can be cut
    between any two of them. What a stage is, per backbone (``arch.unfreeze_last=N`` trains the last N):

    - ``mobilefacenet`` (20): ``conv1``, ``dw_conv1``, the 15 bottlenecks, ``conv2``, ``linear7`` (the global
      depthwise conv), ``linear1`` (the 1x1 projection to 128-d);
    - ``resnet50`` (17): the stem (conv1, bn1, ReLU, max-pool), the 16 bottleneck blocks of layer1..layer4
      (the last with the global average pool);
    - ``inception_resnet_v1`` (31): conv2d_1a, 2a, 2b (+ max-pool), 3b, 4a, 4b, the 5 blocks of repeat_1,
      mixed_6a, the 10 of repeat_2, mixed_7a, the 5 of repeat_3, block8 (+ average pool, dropout),
      last_linear, last_bn.
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module, stages: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.net = net
        self._stages = stages  # a plain list: the modules are registered (and saved) under net
        self._frozen: list[nn.Module] = []
        self._n_tail: int | None = None  # trainable last stages once frozen (None: not frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def n_stages(self) -> int:
        return len(self._stages)

    def freeze(self, trainable_stages: int = 0) -> None:
        """Freeze all but the last ``trainable_stages`` stages. Frozen BatchNorms stay in eval mode."""
        n = len(self._stages)
        if not 0 <= trainable_stages <= n:
            raise FacematchError(
                f"arch.unfreeze_last={trainable_stages} is out of range for {self.spec.name} "
                f"(0..{n}); use 0 to freeze the whole backbone"
            )
        for p in self.net.parameters():
            p.requires_grad_(False)
        for stage in self._stages[n - trainable_stages :]:
            for p in stage.parameters():
                p.requires_grad_(True)
        self._frozen = [m for m in self.net.modules() if not any(p.requires_grad for p in m.parameters(recurse=False))]
        self._n_tail = int(trainable_stages)
        self.__dict__.pop("_split", None)
        self.train(self.training)

    @property
    def fully_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.net.parameters())

    @property
    def trainable_stages(self) -> int:
        """How many last stages train: all of them unless :meth:`freeze` was called."""
        return len(self._stages) if self._n_tail is None else self._n_tail

    @property
    def frozen(self) -> bool:
        """Whether :meth:`freeze` left a frozen trunk (then :meth:`trunk` / :meth:`tail` split it)."""
        return self._n_tail is not None and self._n_tail < len(self._stages)

    def _split_modules(self) -> tuple[nn.Module, nn.Module]:
        # Kept out of the module tree (no duplicate state-dict keys): both share this backbone's stages.
        if "_split" not in self.__dict__:
            k = self._n_tail or 0
            n = len(self._stages)
            if k == 0:
                trunk, tail = self, nn.Identity()
            else:
                trunk = Stages(self._stages[: n - k], flatten=True)
                # the tail's input shape, from one zero image (the frozen stages are in eval mode anyway)
                probe = torch.zeros(1, 3, *self.spec.input_size, device=next(self.net.parameters()).device)
                with torch.no_grad():
                    shape = Stages(self._stages[: n - k]).eval()(probe).shape[1:]
                tail = Stages(self._stages[n - k :], in_shape=tuple(shape))
            self.__dict__["_split"] = (trunk, tail)
        return self.__dict__["_split"]

    def trunk(self) -> nn.Module:
        """The frozen stages as one module: images -> flat (N, C*H*W) activations. With every stage frozen,
        this backbone itself (its features are what ``facematch-eval`` caches for these weights)."""
        if not self.frozen:
            raise RuntimeError("trunk() needs a frozen backbone (arch.freeze=true)")
        return self._split_modules()[0]

    def tail(self) -> nn.Module:
        """The trainable stages as one module, on :meth:`trunk` outputs; the identity when all are frozen."""
        if not self.frozen:
            raise RuntimeError("tail() needs a frozen backbone (arch.freeze=true)")
        return self._split_modules()[1]

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen:
            if isinstance(m, nn.modules.batchnorm._BatchNorm) or isinstance(m, nn.Dropout):
                m.eval()
        return self


# ---------------------------------------------------------------------------------------------------
# the three backbones

FACENET_NORM = dict(mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3)  # (x - 127.5) / 128
IMAGENET_NORM = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _inception_resnet_v1(weights: str | None, pretrained: str | None) -> Backbone:
    from facenet_pytorch import InceptionResnetV1

    class _Embed(nn.Module):
        """facenet-pytorch's model without its final L2 normalisation (the head normalises)."""

        def __init__(self):
            super().__init__()
            self.model = InceptionResnetV1(pretrained=None, classify=False)

        def forward(self, x):
            m = self.model
            for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                         "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
                         "avgpool_1a", "dropout"):
                x = getattr(m, name)(x)
            return m.last_bn(m.last_linear(x.flatten(1)))

    net = _Embed()
    path = weights or (facenet_pretrained_file(pretrained) if pretrained else None)
    if path:
        load_strict(net.model, load_state_dict_file(path), str(path), ignore_prefixes=("logits.",))
    m = net.model
    stages = [m.conv2d_1a, m.conv2d_2a, nn.Sequential(m.conv2d_2b, m.maxpool_3a), m.conv2d_3b, m.conv2d_4a,
              m.conv2d_4b, *m.repeat_1, m.mixed_6a, *m.repeat_2, m.mixed_7a, *m.repeat_3,
              nn.Sequential(m.block8, m.avgpool_1a, m.dropout, nn.Flatten(1)), m.last_linear, m.last_bn]
    spec = BackboneSpec("inception_resnet_v1", (160, 160), "facenet_160", embedding_dim=512, **FACENET_NORM)
    return Backbone(spec, net, stages)


def _resnet50(weights: str | None, pretrained: str | None, **options) -> Backbone:
    from facematch.models.resnet import resnet50_backbone

    return resnet50_backbone(weights, pretrained, **options)


def _mobilefacenet(weights: str | None, pretrained: str | None) -> Backbone:
    from facematch.models.mobilefacenet import MobileFaceNet

    net = MobileFaceNet()
    path = weights or (mobilefacenet_pretrained_file(pretrained) if pretrained else None)
    if path:
        load_strict(net, load_state_dict_file(path), str(path))
    spec = BackboneSpec("mobilefacenet", (112, 96), "sphereface_112x96", embedding_dim=128, **FACENET_NORM)
    backbone = Backbone(spec, net, net.stages())
    backbone.weights_path = str(path) if path else None
    return backbone


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "inception_resnet_v1": _inception_resnet_v1,
    "resnet50": _resnet50,
    "mobilefacenet": _mobilefacenet,
}


def build_backbone(
    name: str,
    weights: str | None = None,
    pretrained: str | None = None,
    freeze: bool = False,
    unfreeze_last: int = 0,
    **options,
) -> Backbone:
    """Build backbone ``name``.

    ``weights``: a local state-dict file; ``pretrained``: a named download (facenet-pytorch, torchvision);
    ``freeze``: train only what sits on top (the embedding head), except the last ``unfreeze_last`` stages;
    ``options``: what one backbone's own config adds (resnet50: ``template``, ``pool``).
    """
    if name not in BACKBONES:
        raise FacematchError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    try:
        backbone = BACKBONES[name](weights or None, pretrained or None, **options)
    except TypeError as err:
        if options and "unexpected keyword" in str(err):
            raise FacematchError(f"arch.{next(iter(options))} is not an option of {name}; "
                                 f"its options are in conf/arch/{name}.yaml") from None
        raise
    backbone.weights_path = str(weights) if weights else getattr(backbone, "weights_path", None)
    if freeze:
        backbone.freeze(int(unfreeze_last))
    return backbone
