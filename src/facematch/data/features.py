"""Frozen-backbone fast path: backbone features computed once, cached on disk, served instead of images.

When the backbone is frozen (``arch.freeze=true``, no unfrozen stages) only the head learns, so the
backbone's output for an image never changes: computing it every epoch is wasted work. The DataModule
then asks a :class:`FeatureStore` for ``(V, D)`` features per image and the LightningModule feeds them
straight to the head.

Augmentation, made explicit: each image is cached as ``V = data.features.views`` views: view 0 is the
plain crop, view 1 its mirror image, views 2.. are random draws of the configured training augmentation
(seeded by image and view, so the cache is reproducible). Training picks one view at random per use;
validation and test use view 0 only. ``views: 1`` turns augmentation off.

Cache: one file per (backbone, weights sha256, preprocessing key, views, augmentation) under
``<cache_dir>/features/``, a dict ``{"paths": [...], "features": float16 tensor (N, V, D)}`` written
atomically; images missing from it are computed and appended, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facematch.data.transforms import build_transform
from facematch.utils.io import atomic_torch_save, sha256_file

log = logging.getLogger(__name__)

SAVE_EVERY = 2048  # images between checkpoints of a long extraction


class _Views(Dataset):
    """Item i: the ``views`` transformed crops of image i, stacked (V, 3, H, W)."""

    def __init__(self, rels, source, spec, augment, views: int, seed: int):
        self.rels, self.source, self.views, self.seed = list(rels), source, views, seed
        self.plain = build_transform(spec, None, train=False)
        self.flip = build_transform(spec, {"enabled": True, "hflip": 1.0}, train=True)
        self.aug = build_transform(spec, augment, train=True) if views > 2 else None

    def __len__(self):
        return len(self.rels)

    def __getitem__(self, i):
        crop = self.source(self.rels[i])
        out = [self.plain(crop)]
        if self.views > 1:
            out.append(self.flip(crop))
        for v in range(2, self.views):
            torch.manual_seed(zlib.crc32(f"{self.seed}/{self.rels[i]}/{v}".encode()))
            out.append(self.aug(crop))
        return torch.stack(out)


class FeatureStore:
    """Cached ``(V, D)`` backbone features per relative image path."""

    def __init__(self, backbone, source, cache_dir: str | Path, views: int = 2,
                 augment: Mapping[str, Any] | None = None, batch_size: int = 64, num_workers: int = 2,
                 seed: int = 0):
        if views < 1:
            raise ValueError("data.features.views must be >= 1")
        self.backbone, self.source, self.views = backbone, source, int(views)
        self.augment = dict(augment or {})
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.path = Path(cache_dir) / "features" / f"{self.key()}.pt"
        self.index: dict[str, int] = {}
        self.features = torch.empty(0, self.views, backbone.spec.embedding_dim, dtype=torch.float16)
        self._load()

    # -- identity of the cache ----------------------------------------------------------------------
    def key(self) -> str:
        weights = getattr(self.backbone, "weights_path", None)
        wid = sha256_file(weights)[:16] if weights else "random-init"
        desc = json.dumps({"arch": self.backbone.spec.name, "weights": wid, "source": self.source.key,
                           "views": self.views, "augment": self.augment if self.views > 2 else None,
                           "seed": self.seed if self.views > 2 else None}, sort_keys=True)
        if wid == "random-init":  # untrained weights differ per seed: never reuse across runs
            desc += str(id(self.backbone))
        return f"{self.backbone.spec.name}-{hashlib.sha256(desc.encode()).hexdigest()[:16]}"

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
            self.index = {p: i for i, p in enumerate(blob["paths"])}
            self.features = blob["features"]
        except Exception as err:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable feature cache %s (%s)", self.path, err)
            self.index, self.features = {}, self.features[:0]

    def _save(self) -> None:
        paths = sorted(self.index, key=self.index.get)
        atomic_torch_save({"paths": paths, "features": self.features}, self.path)

    # -- filling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def ensure(self, rels: Sequence[str]) -> None:
        todo = sorted(set(rels) - set(self.index))
        if not todo:
            log.info("feature cache %s: all %d images cached", self.path.name, len(set(rels)))
            return
        log.info("feature cache %s: computing %d of %d images", self.path.name, len(todo), len(set(rels)))
        was_training = self.backbone.training
        self.backbone.eval()
        data = _Views(todo, self.source, self.backbone.spec, self.augment, self.views, self.seed)
        from facematch.data.datamodule import one_thread_worker

        loader = DataLoader(data, batch_size=self.batch_size, num_workers=self.num_workers,
                            worker_init_fn=one_thread_worker)
        done, chunks, since_save = 0, [], 0
        for batch in tqdm(loader, desc="backbone features", unit="batch", leave=False):
            b, v = batch.shape[:2]
            x = batch.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            feats = self.backbone(x).float().view(b, v, -1).to(torch.float16)
            chunks.append(feats)
            for rel in todo[done: done + b]:
                self.index[rel] = len(self.index)
            done += b
            since_save += b
            if since_save >= SAVE_EVERY:
                self.features = torch.cat([self.features, *chunks])
                chunks, since_save = [], 0
                self._save()
        if chunks:
            self.features = torch.cat([self.features, *chunks])
        self._save()
        self.backbone.train(was_training)

    def __call__(self, rel: str) -> np.ndarray:
        return self.features[self.index[rel]].float().numpy()

    def __getstate__(self):  # workers need the table, not the backbone
        state = dict(self.__dict__)
        state["backbone"] = None
        return state


def view_picker(train: bool, seed: int = 0) -> Callable[[np.ndarray], torch.Tensor]:
    """(V, D) -> (D,): a random view for training, view 0 otherwise."""
    if not train:
        return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[0]))
    return lambda feats: torch.from_numpy(np.ascontiguousarray(feats[random.randrange(len(feats))]))
