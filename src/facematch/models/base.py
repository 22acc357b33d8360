"""The types every backbone and every evaluation shares: :class:`BackboneSpec` (input size, template,
normalisation, embedding size: the one interface everything else asks), :class:`Backbone` (a network cut
into stages), :class:`EvalModel` (what an evaluation scores) and the pixel normalisations.

The backbones themselves, one module each, are in :mod:`facematch.models.backbones` (the registry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from facematch.errors import FacematchError

FACENET_NORM = dict(mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3)  # (x - 127.5) / 128
IMAGENET_NORM = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


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
    between any two of them (``arch.unfreeze_last=N`` trains the last N). What a stage is, per backbone:
    the docstring of its module in :mod:`facematch.models.backbones`.
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


@dataclass
class EvalModel:
    """The model an evaluation scores (:mod:`facematch.models.loading`): a checkpoint, a bare backbone or an
    ONNX file, as one module with the spec of the crops it takes."""

    module: nn.Module  # normalised NCHW float batch -> (N, D) features
    spec: BackboneSpec
    fingerprint: str  # sha256 hex, the weights part of the embedding cache key
    description: dict[str, Any] = field(default_factory=dict)
    train_config: dict | None = None  # the resolved training config, for checkpoints
    calibration: dict | None = None  # operating points stored in the model file (calibration/store.py)
