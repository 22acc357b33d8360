"""A closed-set split, as the FaceNet reproduction trained: the N people with the most images, each person's
images split by image (``train_fraction`` train, the rest validation), so the same people train and validate.

Everything else is :class:`~facematch.data.datamodule.FaceDataModule`'s: ``test_fold=k`` removes fold k's
people first (they are the test people, never trained on), validation pairs are drawn from the validation
images, and :class:`facematch.callbacks.template_accuracy.TemplateAccuracy` scores the validation images against
templates of the training images (:attr:`template_sets`).
"""

from __future__ import annotations

import random

from facematch.data.datamodule import FaceDataModule
from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import identity_of
from facematch.errors import FacematchError


class ClosedSetDataModule(FaceDataModule):
    closed_set = True

    def __init__(self, *args, top_identities: int = 150, train_fraction: float = 0.8, **kwargs):
        super().__init__(*args, **kwargs)
        self.top_identities, self.train_fraction = int(top_identities), float(train_fraction)
        self.train_index: IdentityIndex | None = None
        self.val_index: IdentityIndex | None = None

    def _people(self, index: IdentityIndex) -> IdentityIndex:
        """The ``top_identities`` people with the most images (ties by name), of those with ``min_images``."""
        index = index.with_min_images(max(self.min_images, 2))
        ranked = sorted(index.identities, key=lambda i: (-len(index.images[i]), i))
        if len(ranked) < 2:
            raise FacematchError(f"only {len(ranked)} people under {self.root} have two or more images; "
                                 "a closed-set split needs at least 2")
        return index.subset(ranked[: self.top_identities])

    def _split(self, index: IdentityIndex) -> tuple[IdentityIndex, IdentityIndex]:
        """Per person: its images shuffled (seeded), the first ``floor(n * train_fraction)`` (at least two,
        so that a training triplet can be drawn) train and the rest validate."""
        rng = random.Random(self.seed)
        train, val = {}, {}
        for ident in index.identities:
            images = list(index.images[ident])
            rng.shuffle(images)
            cut = min(len(images), max(2, int(len(images) * self.train_fraction)))
            train[ident], val[ident] = sorted(images[:cut]), sorted(images[cut:])
        self.train_index = IdentityIndex(index.root, train, index.dropped)
        self.val_index = IdentityIndex(index.root, {k: v for k, v in val.items() if v}, index.dropped)
        if len(self.val_index.with_min_images(2).identities) < 1 or len(self.val_index.identities) < 2:
            raise FacematchError("the closed-set split leaves too few validation images for same/different pairs; "
                                 "raise data.top_identities or lower data.train_fraction")
        return self.train_index, self.val_index

    def template_sets(self) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
        """``((pool paths, labels), (probe paths, labels))``: the training images (the templates' pool) and
        the validation images (the probes), labelled alike."""
        if self.train_index is None:
            raise RuntimeError("template_sets() needs setup() first")
        labels = self.train_index.label_map()

        def listed(ix: IdentityIndex):
            paths = [p for ident in ix.identities for p in ix.images[ident]]
            return paths, [labels[identity_of(p)] for p in paths]

        return listed(self.train_index), listed(self.val_index)
