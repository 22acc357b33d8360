"""The LightningDataModule: training pairs / triplets / P x K batches and labelled validation pairs,
identity-disjoint, deterministic from the seed, with an optional held-out LFW View 2 fold as test set.

Split rules (the one place they live):
- ``test_fold=k``: every person who appears in fold k of ``pairs`` is removed before anything else;
  the test set is exactly fold k's pairs.
- The remaining identities are split into train / val by identity (``val_fraction``), so no person is
  in both. Validation pairs are balanced same/different pairs drawn once from the val identities (or read
  from ``val_list``).
- A training list (``train_list`` / ``train_triplets``) is used as given after dropping degenerate rows
  and rows that share a person with the validation or test set (counted and reported).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Mapping

import lightning as L
from torch.utils.data import DataLoader

from facematch.data import sampling
from facematch.data.datasets import ImageDataset, PairDataset, ResampledRows, TripletDataset
from facematch.data.identities import IdentityIndex, missing_root_error
from facematch.data.protocols import fold_identities, read_lfw_pairs, read_pair_list, read_pairs, read_triplet_list
from facematch.data.transforms import build_transform
from facematch.errors import FacematchError
from facematch.faces.source import source_from_config
from facematch.models.backbones import BackboneSpec
from facematch.utils.hardware import one_thread_worker

log = logging.getLogger(__name__)

SAMPLINGS = ("pairs", "triplets", "pk")


class FaceDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str,
        spec: BackboneSpec,
        sampling: str = "pairs",
        pairs: str | None = None,
        test_fold: int | None = None,
        train_list: str | None = None,
        train_triplets: str | None = None,
        val_list: str | None = None,
        val_fraction: float = 0.1,
        min_images: int = 1,
        max_identities: int | None = None,
        train_samples: int = 6000,
        val_pairs: int = 1000,
        pk: Mapping[str, int] | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        seed: int = 0,
        preprocess: Mapping[str, Any] | None = None,
        augment: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
    ):
        super().__init__()
        if sampling not in SAMPLINGS:
            raise FacematchError(f"sampling={sampling!r} is unknown; choose one of: {', '.join(SAMPLINGS)}")
        self.root = Path(root)
        self.spec = spec
        self.sampling = sampling
        self.pairs_file = pairs
        self.test_fold = test_fold
        self.train_list, self.train_triplets, self.val_list = train_list, train_triplets, val_list
        self.val_fraction, self.min_images, self.max_identities = val_fraction, min_images, max_identities
        self.train_samples, self.val_pairs = train_samples, val_pairs
        self.pk = dict(pk or {"p": 16, "k": 4})
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.source = source_from_config(self.root, spec.template, preprocess)
        self.augment = dict(augment or {})
        self.features_cfg = dict(features or {"enabled": "auto", "views": 2})
        self.cache_dir = cache_dir or "."
        self.feature_store = None
        self.train_set = self.val_set = self.test_set = None
        self.stats: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not self.root.is_dir():
            raise missing_root_error(self.root)
        index = self._base_index()
        test_people: set[str] = set()
        full_index = index
        if self.test_fold is not None:
            if not self.pairs_file:
                raise FacematchError("data.test_fold needs data.pairs=PATH (an LFW pairs.txt)")
            all_pairs = read_lfw_pairs(self.pairs_file)
            folds = sorted({p.fold for p in all_pairs})
            if self.test_fold not in folds:
                raise FacematchError(f"data.test_fold={self.test_fold} is out of range; {self.pairs_file} has folds 0..{folds[-1]}")
            test_people = fold_identities(all_pairs, self.test_fold)
            test_rows = [p for p in all_pairs if p.fold == self.test_fold]
            test_rows = sampling.clean_rows(test_rows, full_index, f"test fold {self.test_fold}", log)
            test_labels = {ident: i for i, ident in enumerate(sorted(sampling.row_identities(test_rows)))}
            self.test_set = PairDataset(test_rows, self.source, self._transform(False), test_labels)
            index = index.without(test_people)
        index = index.with_min_images(self.min_images).sample_identities(self.max_identities, self.seed)

        train_idx, val_idx = self._split(index)
        labels = index.label_map()
        val_rows = self._val_rows(index, val_idx)
        val_people = sampling.row_identities(val_rows)
        self.val_set = PairDataset(val_rows, self.source, self._transform(False), labels)
        self.train_set = self._train_set(train_idx, index, labels, val_people | test_people, full_index)
        if self.feature_store is not None:
            self._switch_to_features()
        self.stats.update(
            train_identities=len(train_idx.identities), train_images=train_idx.n_images,
            val_identities=len(val_people), val_pairs=len(val_rows),
            test_pairs=len(self.test_set) if self.test_set is not None else 0,
        )
        log.info("data: %s", self.stats)

    def _base_index(self) -> IdentityIndex:
        lists = [f for f in (self._train_file(), self.val_list) if f]
        if lists:  # index only the images the lists (and the held-out fold) name: no folder scan needed
            rels = set()
            for f in lists:
                rows = read_triplet_list(f) if f == self.train_triplets else read_pair_list(f)
                rels |= sampling.row_images(rows)
            if self.test_fold is not None and self.pairs_file:
                rels |= sampling.row_images(read_lfw_pairs(self.pairs_file))
            index = IdentityIndex.from_paths(self.root, rels)
        else:
            index = IdentityIndex.from_folder(self.root)
        self.stats["dropped_images"] = {k: len(v) for k, v in index.dropped.items()}
        return index

    def _train_file(self) -> str | None:
        return self.train_triplets if self.sampling == "triplets" else self.train_list

    def _split(self, index: IdentityIndex) -> tuple[IdentityIndex, IdentityIndex]:
        if self.val_list:
            return index, index.subset(())
        return index.split(self.val_fraction, self.seed)

    def _val_rows(self, index, val_idx):
        if self.val_list:
            return sampling.clean_rows(read_pairs(self.val_list, n_folds=1), index, str(self.val_list), log)
        if not val_idx.identities:
            raise FacematchError("no validation identities: raise data.val_fraction or use more identities")
        return sampling.sample_pairs(val_idx, self.val_pairs, random.Random(self.seed + 1))

    def _train_set(self, train_idx, index, labels, held_out: set[str], full_index):
        tf = self._transform(True)
        listed = self._train_file()
        if listed:
            rows = read_triplet_list(listed) if self.sampling == "triplets" else read_pair_list(listed)
            # degenerate rows (self-pairs, missing images) against every image there is; then the rows
            # of held-out people, and of people left out by min_images / max_identities, each counted
            rows = sampling.clean_rows(rows, full_index, str(listed), log)
            kept = [r for r in rows if not (sampling.row_identities([r]) & held_out)]
            overlap = len(rows) - len(kept)
            if overlap:
                log.warning(
                    "%s: dropped %d of %d rows that share a person with the validation/test set",
                    listed, overlap, len(rows),
                )
            inside = [r for r in kept if all(p in index for p in sampling.row_paths(r))]
            outside = len(kept) - len(inside)
            if outside:
                log.warning("%s: dropped %d rows naming people left out by data.min_images / data.max_identities",
                            listed, outside)
            rows = inside
            if not rows:
                raise FacematchError(f"{listed}: every row shares a person with the validation/test set "
                                     "or names a person left out of training")
            self.stats["train_rows_dropped_overlap"] = overlap
            self.stats["train_rows_dropped_outside"] = outside
            cls = TripletDataset if self.sampling == "triplets" else PairDataset
            return cls(rows, self.source, tf, labels)
        train_idx = train_idx.without(held_out)
        if self.sampling == "pk":
            paths, targets = train_idx.with_min_images(2).paths_and_labels()
            return ImageDataset(paths, targets, self.source, tf)
        if self.sampling == "triplets":
            return ResampledRows(TripletDataset([], self.source, tf, labels), sampling.sample_triplets,
                                 train_idx, self.train_samples, self.seed)
        return ResampledRows(PairDataset([], self.source, tf, labels), sampling.sample_pairs,
                             train_idx, self.train_samples, self.seed)

    # -- frozen-backbone fast path ------------------------------------------------------------------
    def attach_backbone(self, backbone) -> bool:
        """Serve cached backbone features instead of images when ``features.enabled`` is true, or
        ``auto`` and the backbone is completely frozen. Returns whether the fast path is on."""
        enabled = self.features_cfg.get("enabled", "auto")
        if enabled == "auto":
            enabled = backbone.fully_frozen
        elif enabled and not backbone.fully_frozen:
            raise FacematchError("data.features.enabled=true needs a frozen backbone (arch.freeze=true, arch.unfreeze_last=0)")
        if not enabled:
            return False
        from facematch.data.features import FeatureStore

        fc = self.features_cfg
        self.feature_store = FeatureStore(
            backbone, self.source, self.cache_dir, views=int(fc.get("views", 2)),
            batch_size=int(fc.get("batch_size", 128)), num_workers=fc.get("num_workers", "auto"),
            device=fc.get("device", "auto"), precision=fc.get("precision", "auto"), runtime=fc.get("runtime", "auto"),
        )
        self.num_workers = 0  # features are in memory: worker processes would only add start-up time
        return True

    def _switch_to_features(self) -> None:
        from facematch.data.features import view_picker

        sets = [s for s in (self.train_set, self.val_set, self.test_set) if s is not None]
        rels = set()
        for ds in sets:
            rels |= images_of(ds)
        self.feature_store.ensure(sorted(rels))
        for ds in sets:
            inner = getattr(ds, "inner", ds)
            inner.source = self.feature_store
            inner.transform = view_picker(train=ds is self.train_set)
        self.stats["features"] = {"views": self.feature_store.views, "images": len(rels),
                                  "cache": str(self.feature_store.path)}
        log.info("fast path: head trained on cached backbone features (%d views; other augmentation off)",
                 self.feature_store.views)

    def _transform(self, train: bool):
        return build_transform(self.spec, self.augment, train=train)

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.train_set, ResampledRows):
            self.train_set.set_epoch(epoch)

    # -------------------------------------------------------------------------------------------------
    def _loader(self, dataset, shuffle=False, **kw):
        return DataLoader(
            dataset, batch_size=kw.pop("batch_size", self.batch_size), shuffle=shuffle,
            num_workers=self.num_workers, persistent_workers=False, worker_init_fn=one_thread_worker, **kw,
        )

    def train_dataloader(self):
        if self.sampling == "pk":
            from pytorch_metric_learning.samplers import MPerClassSampler

            p, k = int(self.pk["p"]), int(self.pk["k"])
            sampler = MPerClassSampler(self.train_set.targets, m=k, batch_size=p * k,
                                       length_before_new_iter=max(p * k, self.train_samples))
            return self._loader(self.train_set, sampler=sampler, batch_size=p * k, drop_last=True)
        return self._loader(self.train_set, shuffle=True, drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        if self.test_set is None:
            raise FacematchError("no test set: set data.test_fold=K (with data.pairs) to test on an LFW fold")
        return self._loader(self.test_set)


def images_of(ds) -> set[str]:
    """Every image a dataset can serve (for resampled rows: every image of its identity index)."""
    if isinstance(ds, ResampledRows):
        return {p for paths in ds.index.images.values() for p in paths}
    if isinstance(ds, ImageDataset):
        return set(ds.paths)
    return sampling.row_images(ds.rows)
