"""The one evaluation job: (model, pairs, crop source, protocol) -> per-pair scores and the metrics.

``facematch-eval`` (:mod:`facematch.eval.job`), per-fold scoring after training (``train.py``) and
``facematch-report`` (pooled per-fold rows, :func:`facematch.eval.metrics.score_metrics`) all go through
it, so one checkpoint on one fold gets one accuracy. The protocol settings are the ``protocol`` config
group, shared by ``train.yaml`` and ``eval.yaml``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from facematch.data.pair_files import Pair, pair_arrays
from facematch.embedding.embedder import Embedder
from facematch.embedding.engine import EngineSettings
from facematch.embedding.flip import FLIP_MODES
from facematch.errors import FacematchError
from facematch.eval import sharding, ten_fold
from facematch.eval.metrics import TIE_RULES


@dataclass(frozen=True)
class Protocol:
    """How pairs are scored (the ``protocol`` config group); checked when built, before any work."""

    flip: str = "concat"  # none | sum | concat: embed the crop and its mirror, sum or concatenate
    subtract_mean: bool = True  # subtract the training folds' mean feature before scoring
    distance: str = "cosine"  # cosine | sq_l2
    n_folds: int = 10  # folds of a 'pathA pathB label' list (LFW pairs.txt has its own)
    fars: tuple[float, ...] = (1e-3, 1e-2)  # VAL (TAR) reported at these false-accept rates
    threshold: float = 0.6  # raw-cosine threshold of the fixed-threshold accuracy / F1
    # 10-fold threshold search: null = every distinct split (exact), or [start, stop, step], np.arange's grid
    # on the pair distance (squared distance for sq_l2, cosine similarity for cosine)
    threshold_grid: tuple[float, float, float] | None = None
    tie: str = "middle"  # middle | first: which of the thresholds tied for the best accuracy (first: in grid order)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fars", tuple(float(f) for f in self.fars))
        if self.threshold_grid is not None:
            object.__setattr__(self, "threshold_grid", tuple(float(v) for v in self.threshold_grid))
        problems = []
        grid = self.threshold_grid
        if grid is not None and (len(grid) != 3 or grid[2] <= 0 or grid[1] <= grid[0]):
            problems.append(f"protocol.threshold_grid={list(grid)} ([start, stop, step] with start < stop, step > 0)")
        if self.tie not in TIE_RULES:
            problems.append(f"protocol.tie={self.tie!r} (choose {' | '.join(TIE_RULES)})")
        if self.flip not in FLIP_MODES:
            problems.append(f"protocol.flip={self.flip!r} (choose {' | '.join(FLIP_MODES)})")
        if self.distance not in ten_fold.DISTANCES:
            problems.append(f"protocol.distance={self.distance!r} (choose {' | '.join(ten_fold.DISTANCES)})")
        if int(self.n_folds) < 2:
            problems.append(f"protocol.n_folds={self.n_folds} (at least 2)")
        if not all(0.0 < f < 1.0 for f in self.fars):
            problems.append(f"protocol.fars={list(self.fars)} (rates in (0, 1))")
        if not (math.isfinite(float(self.threshold)) and -1.0 <= float(self.threshold) <= 1.0):
            problems.append(f"protocol.threshold={self.threshold} (a cosine in [-1, 1])")
        if problems:
            raise FacematchError("bad protocol setting: " + "; ".join(problems))

    def as_dict(self) -> dict:
        grid = None if self.threshold_grid is None else list(self.threshold_grid)
        return {**asdict(self), "fars": list(self.fars), "threshold_grid": grid}

    def score_thresholds(self) -> np.ndarray | None:
        """The candidate thresholds on the protocol score (minus the squared distance for sq_l2), in grid
        order; None: every distinct split."""
        if self.threshold_grid is None:
            return None
        grid = np.arange(*self.threshold_grid)
        return -grid if self.distance == "sq_l2" else grid


@dataclass
class Verification:
    """What the job returns: the metrics, the embeddings of ``paths`` and every pair's scores."""

    report: dict
    paths: list[str]
    emb: np.ndarray  # (n_images, D) as the model gives them (not normalised)
    same: np.ndarray  # (n_pairs,) bool
    folds: np.ndarray  # (n_pairs,) fold of each pair
    cosine: np.ndarray  # (n_pairs,) raw cosine similarity
    ranked: np.ndarray  # (n_pairs,) protocol scores (each pair scored in its fold's turn)
    embed_stats: dict = field(default_factory=dict)
    # what ran: {"device", "precision", "runtime"} as the embedder resolved them once (Embedder.ran); cached
    # embeddings are those of this precision (it is part of their key)
    ran: dict = field(default_factory=dict)

    def decisions(self) -> np.ndarray:
        """(n_pairs,) bool: each pair's verdict as the 10-fold protocol gave it (its protocol score against the
        threshold chosen on the other folds); what the fold accuracies count."""
        folds = np.array(sorted(set(self.folds.tolist())))
        thresholds = np.asarray(self.report["fold_thresholds"], np.float64)
        return self.ranked >= thresholds[np.searchsorted(folds, self.folds)]

    def fold(self, k: int) -> dict:
        """Fold ``k``'s result (threshold and mean from the other folds), as per-fold scoring records it."""
        folds = sorted(set(self.folds.tolist()))
        if k not in folds:
            raise FacematchError(f"fold {k} is not in the pairs file (folds {folds[0]}..{folds[-1]})")
        sel = self.folds == k
        return {
            "fold": int(k),
            "fold_accuracy": self.report["fold_accuracies"][folds.index(k)],
            "fold_scores": self.cosine[sel].tolist(),  # raw cosine: for the fixed threshold
            "fold_protocol_scores": self.ranked[sel].tolist(),  # as the protocol scored fold k: for VAL@FAR
            "fold_same": self.same[sel].astype(int).tolist(),
        }


def trunk_and_tail(module) -> tuple[Any, Any]:
    """A backbone + head model splits into a trunk (whose outputs the embedding cache keeps) and a tail run
    on the cached outputs: the backbone and the head's projection, or, for a backbone trained with
    ``arch.unfreeze_last=N``, its frozen trunk and [its last N stages, the head's projection] (so the trunk's
    outputs are shared by every fold and model trained on it). The tail is copied in eval mode to the CPU,
    where the embedder runs it on the cached outputs: the caller's model (on any device) is never changed."""
    head = getattr(module, "head", None)
    backbone = getattr(module, "backbone", None)
    if backbone is None or not hasattr(head, "project"):
        return module, None
    if not getattr(backbone, "frozen", False):
        return backbone, copy.deepcopy(head).eval().cpu().project
    tail = copy.deepcopy(torch.nn.Sequential(backbone.tail(), head)).eval().cpu()
    stages, head_copy = tail[0], tail[1]
    return backbone.trunk(), lambda x: head_copy.project(stages(x))


def embedder_for(model, source, flip: str, engine: EngineSettings | None = None) -> Embedder:
    """The embedder of ``model`` (an :class:`EvalModel`) over ``source`` with the engine settings (the
    ``embed`` config group's :class:`~facematch.embedding.engine.EngineSettings`; None: its defaults)."""
    trunk, tail = trunk_and_tail(model.module)
    return Embedder(trunk, model.spec, source, tail=tail, flip=flip, engine=engine)


def verify(model, pairs: Sequence[Pair], source, protocol: Protocol,
           engine: EngineSettings | None = None, *, what: str = "the pairs") -> Verification:
    """Embed every distinct image of ``pairs`` once (through the cache), score the pairs under
    ``protocol`` and compute the 10-fold and pooled metrics. In a process group of 2+ ranks, every rank
    must call it: the images are embedded across the ranks (:mod:`facematch.eval.sharding`) and every
    rank returns the same result."""
    t0 = time.perf_counter()
    rels = list(dict.fromkeys(r for p in pairs for r in (p.a, p.b)))
    embedder = embedder_for(model, source, protocol.flip, engine)
    if sharding.distributed() is None:
        emb, paths = embedder.embed(rels)
        embed_stats = embedder.stats
    else:  # each rank embeds its share; every rank gets all the outputs and scores them (facematch.eval.sharding)
        views, paths, embed_stats = sharding.embed_views_sharded(embedder, rels)
        emb = embedder.finish(views) if paths else np.zeros((0, 0), np.float32)
    ia, ib, same, folds = pair_arrays(list(pairs), paths)
    t1 = time.perf_counter()
    try:
        report, ranked = ten_fold.verification_report(
            emb[ia], emb[ib], same, folds, distance=protocol.distance, subtract_mean=protocol.subtract_mean,
            threshold=float(protocol.threshold), fars=protocol.fars, thresholds=protocol.score_thresholds(),
            tie=protocol.tie, return_scores=True)
    except ValueError as err:  # e.g. a list file with one fold or one class
        raise FacematchError(f"cannot score {what}: {err}") from None
    stats = {**embed_stats, "cache_key": embedder.cache.key if embedder.cache is not None else None,
             "embed_s": t1 - t0, "protocol_s": time.perf_counter() - t1}
    return Verification(report, paths, emb, np.asarray(same, bool), np.asarray(folds),
                        ten_fold.cosine_scores(emb[ia], emb[ib]), np.asarray(ranked), stats, embedder.ran)
