"""Frozen-trunk fast path: the frozen part of the backbone computed once per image and view, cached on
disk, served instead of images.

With ``arch.freeze=true`` the backbone splits into a frozen trunk and its last ``arch.unfreeze_last``
stages (:meth:`~facematch.models.base.Backbone.trunk` / ``tail``). The trunk's output for an image
never changes during training, so computing it every epoch is wasted work: the DataModule serves
``(K, D)`` flat trunk activations per image from a :class:`FeatureStore`, and the LightningModule runs the
trainable stages and the head on them (with every stage frozen, the activations are the backbone's
features and only the head trains).

Augmentation, made explicit: the store keeps ``K = views x draws`` views per image: ``views`` = 1 (the crop)
or 2 (the crop and its mirror image), for each of ``data.degrade.draws`` degradation draws (1 without
``data.degrade``). Rotation, translation, scale and colour jitter are off on this path. Training draws one
view at random per use; validation and test use view 0: the plain crop of draw 0, which is the crop
evaluation scores. With ``data.degrade`` and ``data.features.originals=true``, the undegraded crop's views
follow the draws' as one more group: training then sees the original photos beside the degraded ones
(what keeps a model adapted to low resolution accurate on full-resolution photos); evaluation is unchanged.

The activations go through the embedder and its on-disk cache (:mod:`facematch.embedding`), run as the
``embed`` config group says (the engine of every embedding pass), keyed by the
trunk's weights, the preprocessing (degradation and draw included), the source folder and the number of
views: with every stage frozen, the same entries that ``facematch-eval`` and per-fold scoring use for this
backbone, so each is computed once.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Sequence

import numpy as np
import torch

from facematch.embedding.embedder import Embedder
from facematch.embedding.engine import EngineSettings
from facematch.errors import FacematchError

log = logging.getLogger(__name__)


class FeatureStore:
    """Cached ``(K, D)`` trunk activations per relative image path (K = views x degradation draws)."""

    def __init__(self, backbone, source, engine: EngineSettings | None = None, views: int = 2,
                 originals: bool = False):
        """``engine``: the ``embed`` config group's settings (batch size, workers, device, precision, runtime, cache).
        ``originals``: also the undegraded crop's views, after the degradation draws' (needs a degradation)."""
        if views not in (1, 2):
            raise FacematchError(
                f"data.features.views={views} is not supported; use 1 (plain crops) or 2 (plain + mirror)"
            )
        degrade = getattr(source, "degrade", None)
        if originals and degrade is None:
            raise FacematchError("data.features.originals=true adds the undegraded crops beside degraded ones: "
                                 "it needs data.degrade (or set data.features.originals=false)")
        sources = [source.with_draw(d) for d in range(degrade.draws if degrade is not None else 1)]
        if originals:
            sources.append(source.undegraded())
        self.draws = len(sources)  # groups of views: the degradation draws, then the originals
        self.views = int(views) * self.draws
        trunk = backbone.trunk()
        self.embedders = [
            Embedder(trunk, backbone.spec, src, flip="concat" if views == 2 else "none", engine=engine)
            for src in sources
        ]
        cache = self.embedders[0].cache
        self.path = cache.dir if cache is not None else None
        self.table: dict[str, np.ndarray] = {}

    def ensure(self, rels: Sequence[str]) -> None:
        """Compute (or read from the cache) the activations of every image in ``rels``."""
        todo = sorted(set(rels) - set(self.table))
        if not todo:
            return
        per_draw = []
        for embedder in self.embedders:
            feats, paths = embedder.embed_views(todo)
            log.info("trunk activations: %d images x %d views of %d values (%d from the cache) in %.1f s",
                     len(paths), feats.shape[1], feats.shape[2], embedder.stats.get("cache_hits", 0),
                     embedder.stats.get("seconds", 0.0))
            per_draw.append(dict(zip(paths, feats)))
        self.table.update({r: np.concatenate([d[r] for d in per_draw]) for r in todo})
        mb = sum(v.nbytes for v in self.table.values()) / 2**20
        log.info("feature store: %d images, %d views each, %.0f MiB in memory", len(self.table), self.views, mb)

    def stack(self, rels: Sequence[str]) -> torch.Tensor:
        """(N, K, D) activations of ``rels``, computing missing ones first."""
        self.ensure(rels)
        return torch.from_numpy(np.stack([self.table[r] for r in rels]))

    def __call__(self, rel: str) -> np.ndarray:
        return self.table[rel]

    def __getstate__(self):  # DataLoader workers need the table, not the model
        state = dict(self.__dict__)
        state["embedders"] = None
        return state


def view_picker(train: bool) -> Callable[[np.ndarray], torch.Tensor]:
    """(K, D) -> (D,): a random view for training, view 0 (the plain crop of draw 0) otherwise."""
    if not train:
        return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[0]))
    return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[random.randrange(len(feats))]))
