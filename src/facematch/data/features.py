"""Frozen-backbone fast path: backbone features computed once, cached on disk, served instead of images.

When the backbone is frozen (``arch.freeze=true``, no unfrozen stages) only the head learns, so the
backbone's output for an image never changes: computing it every epoch is wasted work. The DataModule
then serves ``(V, D)`` features per image from a :class:`FeatureStore`, and the LightningModule feeds
them straight to the head.

Augmentation, made explicit: the store keeps ``V = data.features.views`` views per image: ``1`` = the
plain crop only (augmentation off), ``2`` = the plain crop and its mirror image (horizontal flip is the
only augmentation; rotation, translation, scale and colour jitter are off in the fast path). Training
draws one view at random per use; validation and test use the plain view.

The features go through the evaluation embedder and its on-disk cache (:mod:`facematch.eval.embed`),
keyed by the weights' sha256, the preprocessing and the source folder, with ``flip=concat`` for two
views: the same cache entry that ``facematch-eval`` uses for the bare pretrained backbone, so each is
computed once; an image whose source file changed is computed again.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from facematch.errors import FacematchError

log = logging.getLogger(__name__)


class FeatureStore:
    """Cached ``(V, D)`` backbone features per relative image path."""

    def __init__(self, backbone, source, cache_dir: str | Path, views: int = 2, batch_size: int = 128,
                 num_workers: int | str = "auto", progress: bool = True, device: str = "auto",
                 precision: str = "auto", runtime: str = "auto"):
        from facematch.eval.embed import Embedder, make_cache_key, resolve
        from facematch.models.loading import weights_fingerprint

        if views not in (1, 2):
            raise FacematchError(
                f"data.features.views={views} is not supported; use 1 (plain crops) or 2 (plain + mirror)"
            )
        self.views, self.dim = int(views), backbone.spec.embedding_dim
        fingerprint, _ = weights_fingerprint(backbone)
        flip = "concat" if views == 2 else "none"
        device, precision = resolve(device, precision)
        key, meta = make_cache_key(fingerprint, source, backbone.spec, flip=flip, bf16=precision == "bf16")
        self.path = Path(cache_dir) / "embeddings" / key
        self.embedder = Embedder(backbone, backbone.spec, source, batch_size=batch_size, num_workers=num_workers,
                                 flip=flip, precision=precision, device=device, runtime=runtime,
                                 cache_dir=Path(cache_dir) / "embeddings", cache_key=key, cache_meta=meta,
                                 progress=progress)
        self.table: dict[str, np.ndarray] = {}

    def ensure(self, rels: Sequence[str]) -> None:
        """Compute (or read from the cache) the features of every image in ``rels``."""
        todo = sorted(set(rels) - set(self.table))
        if not todo:
            return
        emb, paths = self.embedder.embed(todo)
        log.info("backbone features: %d images (%d from the cache) in %.1f s", len(paths),
                 self.embedder.stats.get("cache_hits", 0), self.embedder.stats.get("seconds", 0.0))
        feats = emb.reshape(len(paths), self.views, self.dim)
        self.table.update(zip(paths, feats))

    def stack(self, rels: Sequence[str]) -> torch.Tensor:
        """(N, V, D) features of ``rels``, computing missing ones first."""
        self.ensure(rels)
        return torch.from_numpy(np.stack([self.table[r] for r in rels]))

    def __call__(self, rel: str) -> np.ndarray:
        return self.table[rel]

    def __getstate__(self):  # DataLoader workers need the table, not the model
        state = dict(self.__dict__)
        state["embedder"] = None
        return state


def view_picker(train: bool) -> Callable[[np.ndarray], torch.Tensor]:
    """(V, D) -> (D,): a random view for training, the plain view (0) otherwise."""
    if not train:
        return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[0]))
    return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[random.randrange(len(feats))]))
