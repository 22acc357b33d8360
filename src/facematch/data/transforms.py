"""Training transforms: train-time augmentation (torchvision v2 on uint8 crops), then the backbone's normalisation."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torchvision.transforms import v2

from facematch.models.base import BackboneSpec


def _to_image(crop):
    """An HxWx3 crop as a CHW image tensor. Arrays are copied first: crops are often read-only (``np.asarray``
    of a PIL image, cached crops), which ``torch.from_numpy`` inside ``v2.ToImage`` warns about."""
    return v2.functional.to_image(np.array(crop, copy=True) if isinstance(crop, np.ndarray) else crop)


def build_transform(spec: BackboneSpec, augment: Mapping[str, Any] | None = None, train: bool = False):
    """uint8 HxWx3 array -> normalised float CHW tensor. Augmentation applies only when ``train``."""
    ops: list = [_to_image]
    if train and augment and augment.get("enabled", False):
        if augment.get("hflip", 0):
            ops.append(v2.RandomHorizontalFlip(p=float(augment["hflip"])))
        if augment.get("rotation", 0) or augment.get("translate", 0) or augment.get("scale"):
            t = float(augment.get("translate", 0) or 0)
            ops.append(
                v2.RandomAffine(
                    degrees=float(augment.get("rotation", 0) or 0),
                    translate=(t, t) if t else None,
                    scale=tuple(augment["scale"]) if augment.get("scale") else None,
                )
            )
        cj = float(augment.get("color_jitter", 0) or 0)
        if cj:
            ops.append(v2.ColorJitter(brightness=cj, contrast=cj, saturation=cj))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(spec.mean), std=list(spec.std))]
    return v2.Compose(ops)
