"""Distillation data: a frozen teacher's embeddings of the original (undegraded) crops, served beside each
training image.

:class:`Teacher` (``data.teacher``) embeds every training image once through the embedder and its on-disk
cache (:mod:`facematch.embedding`), keyed like every other cached embedding (the teacher's weights, the
undegraded crop source, plain + mirror views), so the pretrained backbone's entries are shared with
``facematch-eval``. :class:`TaughtImages` serves ``Taught(x, label, teacher)``: the student's input (a
degraded crop, or its cached trunk activations on the fast path) and the teacher's embedding of the
original crop of the same image and the same view (plain or mirror).
"""

from __future__ import annotations

import random
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from facematch.data.datasets import ImageDataset
from facematch.embedding.embedder import Embedder
from facematch.embedding.engine import EngineSettings
from facematch.errors import FacematchError
from facematch.data.source import source_from_config
from facematch.models.loading import load_model

TEACHER_VIEWS = 2  # plain + mirror: the views the student sees


class Taught(NamedTuple):
    """A training item (and, collated, a batch: torch's collate keeps the named tuple)."""

    x: torch.Tensor
    label: int | torch.Tensor
    teacher: torch.Tensor


class Teacher:
    """The frozen teacher: ``arch`` (a ``conf/arch`` node; the pretrained backbone by default) or
    ``ckpt_path`` (a facematch-train checkpoint: its backbone + head), run as the embedder says."""

    def __init__(self, arch: Mapping | None = None, ckpt_path: str | None = None, engine: Mapping | None = None):
        """``engine``: the ``embed`` config group, the one engine setting of every embedding pass."""
        self.arch = dict(arch) if arch else None
        self.ckpt_path = ckpt_path or None
        self.engine = EngineSettings.from_config(engine)

    def embedder(self, source_for: Callable[[str], object]) -> Embedder:
        """The teacher's embedder over the undegraded crops (``source_for(template)``) and the cache."""
        model = load_model(self.ckpt_path, self.arch)
        return Embedder(model.module, model.spec, source_for(model.spec.template), flip="concat",
                        fingerprint=model.fingerprint, engine=self.engine)

    def embeddings(self, rels: Sequence[str], source_for: Callable[[str], object]) -> dict[str, np.ndarray]:
        """``{rel: (2, D)}``: the teacher's outputs for the plain and the mirrored original crop."""
        views, paths = self.embedder(source_for).embed_views(rels)
        return dict(zip(paths, views))

    def attach(self, dm) -> "TaughtImages":
        """The training images of the FaceDataModule ``dm`` (set up up to its training set, and its feature
        store on the fast path) served with the teacher's embeddings of their original crops."""
        if not isinstance(dm.train_set, ImageDataset):
            raise FacematchError("distillation (data.teacher) trains on labelled images: use loss=distill, a "
                                 "loss with class weights, or a miner (P x K batches), not pair or triplet rows")

        def original(template: str):  # the undegraded crops, in the teacher's template
            return source_from_config(dm.root, template, dm.preprocess)

        targets = self.embeddings(dm.train_set.paths, original)
        fs = dm.feature_store
        return TaughtImages(dm.train_set, targets, fs.views // fs.draws if fs is not None else None)


class TaughtImages(ImageDataset):
    """An :class:`ImageDataset` whose items are ``Taught(x, label, teacher)``. ``views_per_draw``: on the
    fast path, how many views (1 plain, 2 plain + mirror) each degradation draw of the cached activations
    holds (a random one is served, with the teacher's embedding of the same view); None for images, where
    a random view (the crop or its mirror image) is served."""

    def __init__(self, inner: ImageDataset, teacher: Mapping[str, np.ndarray], views_per_draw: int | None):
        super().__init__(inner.paths, inner.targets, inner.source, inner.transform)
        missing = [p for p in inner.paths if p not in teacher]
        if missing:
            raise FacematchError(f"no teacher embedding for {len(missing)} training images (e.g. {missing[0]})")
        self.teacher, self.views_per_draw = teacher, views_per_draw

    def __getitem__(self, i):
        rel = self.paths[i]
        item = self.source(rel)
        if self.views_per_draw is not None:  # (K, D) cached activations, K = draws x views per draw
            k = random.randrange(len(item))
            x, view = torch.from_numpy(np.ascontiguousarray(item[k])), k % self.views_per_draw
        else:
            view = random.randrange(TEACHER_VIEWS)
            x = self.transform(np.ascontiguousarray(item[:, ::-1] if view else item))
        return Taught(x, self.targets[i], torch.from_numpy(np.ascontiguousarray(self.teacher[rel][view])))
