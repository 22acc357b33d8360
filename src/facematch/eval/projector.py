"""TensorBoard's embedding projector of a set of face embeddings, each point labelled by its person and shown
as its face (a sprite): written by ``facematch-eval`` (its run's ``tensorboard/``) and, for the held-out fold's
people, at the end of a training run (:mod:`facematch.callbacks.dashboard`)."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


def thumbnails(source, rels: list[str], size: int = 32) -> torch.Tensor | None:
    """Small crops for the projector's sprite (best effort: None if any crop cannot be read)."""
    import torch.nn.functional as F

    try:
        crops = np.stack([source(r) for r in rels])
    except Exception as err:  # thumbnails are decoration
        log.warning("projector thumbnails skipped: %s", err)
        return None
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def add_projector(writer, emb: np.ndarray, labels: np.ndarray, source, paths: Sequence[str], n_identities: int,
                  step: int = 0, sprite_size: int = 32, max_sprites: int = 2000) -> int:
    """TensorBoard's embedding projector (tag ``embeddings``) of the images of the ``n_identities`` people with
    the most images, labelled by person, each with its face as a ``sprite_size`` px sprite (none past
    ``max_sprites`` images). Returns how many embeddings it wrote."""
    from facematch.eval.plots import most_frequent_identities

    labels = np.asarray(labels)
    keep = np.flatnonzero(np.isin(labels, most_frequent_identities(labels, n_identities)))
    if not len(keep):
        return 0
    label_img = thumbnails(source, [paths[i] for i in keep], sprite_size) if len(keep) <= max_sprites else None
    writer.add_embedding(np.asarray(emb)[keep], metadata=labels[keep].tolist(), label_img=label_img,
                         tag="embeddings", global_step=step)
    return len(keep)
