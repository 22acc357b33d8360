"""Margin-softmax losses (ArcFace, CosFace, sub-center ArcFace) from pytorch-metric-learning, with class
weights sized by the training data.

pml's ``ArcFaceLoss`` / ``CosFaceLoss`` / ``SubCenterArcFaceLoss`` hold their class weights ``W``
(embedding size x classes) as a parameter, so they need the number of classes when built; a fold's number
of training people is known only once the DataModule is set up. :class:`ClassMarginLoss` builds the pml loss
then (:meth:`bind`, called from the LightningModule's ``setup``, before a resumed checkpoint is restored; imprinted
by :meth:`imprint_from` when fitting starts, unless resumed), so
``W`` is a parameter of the LightningModule: trained by its optimizer, saved in its checkpoints, and never part
of the embedding net that evaluation, compare, the gallery and the export use.

``margin`` is read in the unit the loss config declares (``margin_unit`` in ``conf/loss/*.yaml``, checked
against its range by :func:`facematch.config.check_margin`): ArcFace and sub-center ArcFace add an angular
margin in ``radians`` (converted here to the degrees pml takes), CosFace subtracts a ``cosine`` margin.
``scale`` multiplies the logits (the s of the papers).

Imprinting: fine-tuning a pretrained net with random class weights wrecks its embedding in the first steps;
with ``imprint`` the weights start at each class's mean L2-normalised embedding under the starting weights
(``auto``: when the backbone was loaded from a weights file).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from facematch.errors import FacematchError


#: The units a margin-softmax loss reads ``margin`` in -> the value pml's loss takes (ArcFace: degrees).
PML_MARGIN: dict[str, Callable[[float], float]] = {"radians": math.degrees, "cosine": float}


class ClassMarginLoss(nn.Module):
    """``loss(embeddings, labels, indices_tuple)`` of a pml margin-softmax loss built by :meth:`bind`.

    ``loss``: the pml class (a ``_partial_`` config: its own options, e.g. ``sub_centers``, already given);
    ``margin_unit``: the unit ``margin`` is in (:data:`PML_MARGIN`); ``lr``: the class weights' own learning
    rate (None: the optimizer's).
    """

    scores_pairs = False  # validation pairs are people the class weights have never seen

    def __init__(self, loss: Callable[..., nn.Module], margin: float, margin_unit: str, scale: float = 64.0,
                 imprint: bool | str = "auto", lr: float | None = None):
        super().__init__()
        if imprint not in (True, False, "auto"):
            raise FacematchError(f"loss.imprint={imprint!r}: use true, false or auto")
        if margin_unit not in PML_MARGIN:
            raise FacematchError(f"margin_unit={margin_unit!r}: a margin-softmax loss reads its margin in "
                                 f"{' | '.join(PML_MARGIN)}")
        self.factory, self.margin, self.margin_unit, self.scale = loss, float(margin), margin_unit, float(scale)
        self.imprint, self.lr = imprint, lr
        self.inner: nn.Module | None = None

    def bind(self, num_classes: int, embedding_size: int) -> None:
        """Build the pml loss for ``num_classes`` classes (random class weights)."""
        margin = PML_MARGIN[self.margin_unit](self.margin)  # as pml takes it
        self.inner = self.factory(num_classes=int(num_classes), embedding_size=int(embedding_size),
                                  margin=margin, scale=self.scale)

    def imprint_from(self, class_means: Callable[[], torch.Tensor], pretrained: bool) -> None:
        """Start the class weights at ``class_means()`` ((C, D) mean embeddings) when ``imprint`` says so
        (``auto``: when ``pretrained``)."""
        if self.imprint is True or (self.imprint == "auto" and pretrained):
            self.set_class_weights(class_means())

    @torch.no_grad()
    def set_class_weights(self, means: torch.Tensor) -> None:
        """Every class's weight (every sub-center's, for sub-center ArcFace) <- its normalised mean."""
        w = self.weight
        c = means.shape[0]
        per_class = w.shape[1] // c
        if w.shape[1] != c * per_class or means.shape[1] != w.shape[0]:
            raise ValueError(f"class means {tuple(means.shape)} do not fit class weights {tuple(w.shape)}")
        # pml's sub-centers of class c are columns c * sub_centers .. (c + 1) * sub_centers - 1
        w.copy_(F.normalize(means.float(), dim=1).t().repeat_interleave(per_class, dim=1).to(w))

    @property
    def weight(self) -> nn.Parameter:
        if self.inner is None:
            raise RuntimeError("ClassMarginLoss.bind() must come first (the LightningModule's setup does it)")
        return self.inner.W

    def param_groups(self) -> list[dict]:
        """The class weights as their own optimizer parameter group when ``lr`` is set (else none)."""
        return [] if self.lr is None or self.inner is None else [{"params": [self.inner.W], "lr": float(self.lr)}]

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices_tuple: tuple[torch.Tensor, ...] | None = None, **_) -> torch.Tensor:
        if self.inner is None:
            raise RuntimeError("ClassMarginLoss.bind() must come first (the LightningModule's setup does it)")
        # in float32: pml casts W to the embeddings' dtype in place, and W must stay float32 under bf16 autocast
        return self.inner(embeddings.float(), labels)
