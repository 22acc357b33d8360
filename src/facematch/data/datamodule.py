"""The LightningDataModule: training batches (pairs, triplets or P x K, as ``batches`` says) and labelled
validation pairs, identity-disjoint, deterministic from the seed, with an optional held-out LFW View 2
fold as test set.

Split rules (the one place they live):
- ``test_fold=k``: every person who appears in fold k of ``pairs`` is removed before anything else;
  the test set is exactly fold k's pairs.
- The remaining identities are split into train / val by identity (``val_fraction``), so no person is
  in both. Validation pairs are balanced same/different pairs drawn once from the val identities (or read
  from ``val_list``).
- A training list (``train_list`` / ``train_triplets``, whichever the batch kind reads) is used as given
  after dropping degenerate rows and rows that share a person with the validation or test set (counted
  and reported).

Items are read from one source, chosen before any dataset is built: preprocessed crops
(``source``), or, on the frozen-backbone fast path, cached backbone features (``feature_store``).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
from torch.utils.data import DataLoader

from facematch.data import sampling
from facematch.data.batches import PairBatches, PKBatches, RowBatches
from facematch.data.datasets import PairDataset, ResampledRows, images_of
from facematch.data.distill import Teacher
from facematch.data.features import FeatureStore, view_picker
from facematch.data.identities import IdentityIndex, missing_root_error
from facematch.data.pair_files import fold_identities, read_lfw_pairs, read_pair_list, read_pairs
from facematch.data.transforms import build_transform
from facematch.errors import FacematchError
from facematch.data.shards import is_url
from facematch.data.source import source_from_config
from facematch.models.base import BackboneSpec
from facematch.utils.hardware import one_thread_worker

log = logging.getLogger(__name__)


class FaceDataModule(L.LightningDataModule):
    closed_set = False  # validation people also train (facematch.data.closed_set); else they are held out

    def __init__(
        self,
        root: str,
        spec: BackboneSpec,
        batches: RowBatches | PKBatches | None = None,
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
        degrade: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        teacher: Teacher | None = None,
    ):
        super().__init__()
        self.root = str(root) if is_url(root) else Path(root)  # a packed set may be an object-store URL
        self.spec = spec
        self.batches = batches if batches is not None else PairBatches()
        self.pairs_file, self.test_fold = pairs, test_fold
        self.train_list, self.train_triplets, self.val_list = train_list, train_triplets, val_list
        self.val_fraction, self.min_images, self.max_identities = val_fraction, min_images, max_identities
        self.train_samples, self.val_pairs = train_samples, val_pairs
        self.pk = dict(pk or {"p": 16, "k": 4})
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.source = source_from_config(self.root, spec.template, preprocess, degrade=degrade)
        self.preprocess, self.teacher = preprocess, teacher
        self.augment = dict(augment or {})
        self.features_cfg = dict(features or {"enabled": "auto", "views": 2})
        self.feature_store: FeatureStore | None = None
        self.train_set = self.val_set = self.test_set = None
        self.stats: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if isinstance(self.root, Path) and not self.root.is_dir():
            raise missing_root_error(self.root)
        train_source, source, transform = self._sources_and_transform()
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
            self.test_set = PairDataset(test_rows, source, transform(False), test_labels)
            index = index.without(test_people)
        index = self._people(index)
        train_idx, val_idx = self._split(index)
        labels = index.label_map()
        val_rows = self._val_rows(index, val_idx)
        val_people = sampling.row_identities(val_rows)
        self.val_set = PairDataset(val_rows, source, transform(False), labels)
        held_out = test_people if self.closed_set else val_people | test_people
        self.train_set = self.batches.train_set(
            train_idx.without(held_out), self._listed_train_rows(index, held_out, full_index), train_source,
            transform(True), labels, self.train_samples, self.seed,
        )
        if self.feature_store is not None:
            self._compute_features()
        if self.teacher is not None:  # distillation: each image with the teacher's embedding of its original crop
            self.train_set = self.teacher.attach(self)
        self.stats.update(
            train_identities=len(train_idx.identities), train_images=train_idx.n_images,
            val_identities=len(val_people), val_pairs=len(val_rows),
            test_pairs=len(self.test_set) if self.test_set is not None else 0,
        )
        log.info("data: %s", self.stats)

    def _train_file(self) -> str | None:
        return self.batches.list_file(self.train_list, self.train_triplets)

    def _base_index(self) -> IdentityIndex:
        train_file = self._train_file()
        if train_file or self.val_list:  # index only the images the lists (and the held-out fold) name
            rels = set()
            if train_file:
                rels |= sampling.row_images(self.batches.read_rows(train_file))
            if self.val_list:
                rels |= sampling.row_images(read_pair_list(self.val_list))
            if self.test_fold is not None and self.pairs_file:
                rels |= sampling.row_images(read_lfw_pairs(self.pairs_file))
            index = IdentityIndex.from_paths(self.root, rels)
        else:
            index = IdentityIndex.from_folder(self.root)
        self.stats["dropped_images"] = {k: len(v) for k, v in index.dropped.items()}
        return index

    def _people(self, index: IdentityIndex) -> IdentityIndex:
        """The people training and validation draw from (the held-out fold's already removed)."""
        return index.with_min_images(self.min_images).sample_identities(self.max_identities, self.seed)

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

    def _listed_train_rows(self, index, held_out: set[str], full_index) -> list | None:
        """The training list's rows (None without one): degenerate rows (self-pairs, missing images) are
        dropped against every image there is; then the rows of held-out people, and of people left out by
        min_images / max_identities, each counted."""
        listed = self._train_file()
        if not listed:
            return None
        rows = sampling.clean_rows(self.batches.read_rows(listed), full_index, str(listed), log)
        kept = [r for r in rows if not (sampling.row_identities([r]) & held_out)]
        overlap = len(rows) - len(kept)
        if overlap:
            log.warning("%s: dropped %d of %d rows that share a person with the validation/test set",
                        listed, overlap, len(rows))
        inside = [r for r in kept if all(p in index for p in sampling.row_paths(r))]
        outside = len(kept) - len(inside)
        if outside:
            log.warning("%s: dropped %d rows naming people left out by data.min_images / data.max_identities",
                        listed, outside)
        if not inside:
            raise FacematchError(f"{listed}: every row shares a person with the validation/test set "
                                 "or names a person left out of training")
        self.stats["train_rows_dropped_overlap"] = overlap
        self.stats["train_rows_dropped_outside"] = outside
        return inside

    # -- item source: crops, or cached backbone features ---------------------------------------------
    def _sources_and_transform(self):
        """``(training source, validation/test source, transform(train))``: preprocessed crops (training
        draws a random degradation per use, evaluation draw 0) and the backbone's transforms, or, on the
        fast path, the feature store and a view picker (a random view for training, the plain one of
        draw 0 else)."""
        if self.feature_store is not None:
            return self.feature_store, self.feature_store, view_picker
        return self.source.with_draw(None), self.source, self._transform

    def attach_backbone(self, backbone, engine=None) -> bool:
        """Serve cached trunk activations instead of images when ``features.enabled`` is true, or ``auto``
        and the backbone has a frozen trunk (``arch.freeze=true``; the last ``arch.unfreeze_last`` stages
        train on the activations), computed as ``engine`` (the ``embed`` group's :class:`~facematch.embedding.engine.EngineSettings`) says. Call before
        :meth:`setup`. Returns whether the fast path is on."""
        if self.train_set is not None:
            raise RuntimeError("attach_backbone() must come before setup(): the datasets are built once")
        enabled = self.features_cfg.get("enabled", "auto")
        if enabled == "auto":
            enabled = backbone.frozen
        elif enabled and not backbone.frozen:
            raise FacematchError("data.features.enabled=true needs a frozen trunk (arch.freeze=true, "
                                 "arch.unfreeze_last below the number of stages)")
        if not enabled:
            if self.features_cfg.get("originals"):
                raise FacematchError("data.features.originals=true mixes original crops into the cached trunk "
                                     "activations: it needs the fast path (arch.freeze=true, data.features.enabled)")
            return False
        self.feature_store = FeatureStore(backbone, self.source, engine, views=int(self.features_cfg.get("views", 2)),
                                          originals=bool(self.features_cfg.get("originals", False)))
        self.num_workers = 0  # features are in memory: worker processes would only add start-up time
        return True

    def _compute_features(self) -> None:
        rels = set()
        for ds in (self.train_set, self.val_set, self.test_set):
            if ds is not None:
                rels |= images_of(ds)
        self.feature_store.ensure(sorted(rels))
        self.stats["features"] = {"views": self.feature_store.views, "images": len(rels),
                                  "cache": str(self.feature_store.path)}
        log.info("fast path: trainable stages + head trained on cached trunk activations (%d views; other "
                 "augmentation off)", self.feature_store.views)

    @torch.no_grad()
    def mean_backbone_feature(self, backbone, max_images: int = 2048) -> torch.Tensor:
        """The mean backbone feature of the training images (for a centred head): from the feature store
        on the fast path (the trainable stages run on the cached activations), else from one pass of
        ``backbone`` over up to ``max_images`` training images."""
        was_training = backbone.training
        backbone.eval()
        if self.feature_store is not None:
            acts = self.feature_store.stack(sorted(images_of(self.train_set)))[:, 0].float()
            tail = backbone.tail()
            mean = torch.cat([tail(acts[i: i + 1024]) for i in range(0, len(acts), 1024)]).mean(0)
            backbone.train(was_training)
            return mean
        device = next(backbone.parameters()).device
        feats, n = [], 0
        for batch in self.train_dataloader():
            x = batch[0].to(device)
            feats.append(backbone(x).float())
            n += x.shape[0]
            if n >= max_images:
                break
        backbone.train(was_training)
        return torch.cat(feats).mean(0)

    def _transform(self, train: bool):
        return build_transform(self.spec, self.augment, train=train)

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.train_set, ResampledRows):
            self.train_set.set_epoch(epoch)

    # -------------------------------------------------------------------------------------------------
    def _loader(self, dataset, shuffle=False, **kw):
        if "batch_sampler" in kw:  # the sampler makes the batches: DataLoader takes no batch_size then
            kw.pop("batch_size", None)
        else:
            kw["batch_size"] = kw.pop("batch_size", self.batch_size)
        return DataLoader(dataset, shuffle=shuffle, num_workers=self.num_workers, persistent_workers=False,
                          worker_init_fn=one_thread_worker, **kw)

    def replicas(self) -> tuple[int, int]:
        """``(rank, world size)`` of the trainer this module is attached to (``(0, 1)`` without one)."""
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_dataloader(self):
        rank, world = self.replicas()
        return self.batches.train_loader(self.train_set, self._loader, self.batch_size, self.train_samples, self.pk,
                                         seed=self.seed, rank=rank, world=world)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        if self.test_set is None:
            raise FacematchError("no test set: set data.test_fold=K (with data.pairs) to test on an LFW fold")
        return self._loader(self.test_set)

