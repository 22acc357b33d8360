"""The quality experiment: train the learned score per fold, score the mixed-quality pairs, draw the
error-versus-discard curves and choose the default threshold (``facematch-eval eval.quality=true``).

- Training crops: every image of the pairs file, undegraded plus ``train.draws`` draws degraded at a
  resolution drawn from ``train.resolution`` and a Gaussian blur from ``train.blur`` (seeded per image and
  draw). The learned score of the faces in LFW View 2 fold ``k`` comes from a head (:mod:`.head`) trained
  only on the images of people *outside* fold ``k`` (View 2's folds share no person), so no scored face's
  person was seen; the class centres are those people's undegraded crops.
- Mixed-quality pairs: :mod:`.pairs`. Similarity: the cosine of the flip-concatenated features, as
  ``facematch-compare`` scores; the FMR thresholds are set once on all pairs before discarding
  (:mod:`.discard`).
- Scores: ``learned``, ``norm`` (the plain-view feature's norm), ``resolution`` (the oracle: each face's true
  height), ``random`` (mean of seeded random orders).
- Default threshold (:func:`default_threshold`): the learned pair quality below which genuine comparisons
  fail more often than they succeed at FMR 1e-3 (a run of ``window`` of them, sorted by quality).
- The shipped head: fold ``shipped_fold``'s (trained on the people outside that fold).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from facematch.data.degrade import Degradation
from facematch.data.pair_files import fold_identities, identity_of
from facematch.quality.discard import (FRACTIONS, area, discard_order, fmr_threshold, fnmr_curve, pair_quality,
                                       random_curve)
from facematch.quality.features import embed_specs
from facematch.quality.head import FitSettings, certainty_ratio, class_centres, fit_head
from facematch.quality.pairs import MixedSettings, pair_specs, plan, true_resolution

SCORES = ("learned", "norm", "resolution", "random")


@dataclass(frozen=True)
class TrainCrops:
    resolution: tuple[float, float] = (12.0, 112.0)
    blur: tuple[float, float] = (0.0, 2.0)
    draws: int = 3
    seed: int = 1

    def degradation(self) -> Degradation:
        return Degradation(resolution=tuple(float(v) for v in self.resolution), blur=tuple(float(v) for v in self.blur),
                           draws=int(self.draws), seed=int(self.seed))


@dataclass(frozen=True)
class QualitySettings:
    train: TrainCrops = field(default_factory=TrainCrops)
    mixed: MixedSettings = field(default_factory=MixedSettings)
    fit: FitSettings = field(default_factory=FitSettings)
    fmrs: tuple[float, ...] = (1e-3, 1e-2)
    f_max: float = 0.2
    shipped_fold: int = 0
    threshold_window: int = 200

    @classmethod
    def from_config(cls, cfg) -> "QualitySettings":
        cfg = dict(cfg or {})
        train = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v)
                 for k, v in dict(cfg.get("train") or {}).items()}
        return cls(TrainCrops(**train), MixedSettings(**dict(cfg.get("mixed") or {})),
                   FitSettings(**dict(cfg.get("fit") or {})), tuple(cfg.get("fmrs") or (1e-3, 1e-2)),
                   float(cfg.get("f_max", 0.2)), int(cfg.get("shipped_fold", 0)),
                   int(cfg.get("threshold_window", 200)))


def fold_heads(model, source, pairs, settings: QualitySettings, cache_dir=None) -> dict:
    """``{fold: head}``: each trained on the images of people outside that fold."""
    rels = sorted({p.a for p in pairs} | {p.b for p in pairs})
    deg, draws = settings.train.degradation(), settings.train.draws
    specs = [(r, None, 0) for r in rels] + [(r, deg, d) for d in range(draws) for r in rels]
    feats = embed_specs(model, source, specs, flip="none", cache_dir=cache_dir, what="train-crops")[:, 0]
    groups = feats.reshape(draws + 1, len(rels), -1)  # [undegraded, draw 0, draw 1, ...]
    ids = np.array([identity_of(r) for r in rels])
    heads = {}
    for k in sorted({p.fold for p in pairs}):
        keep = ~np.isin(ids, sorted(fold_identities(pairs, k)))
        names, labels = np.unique(ids[keep], return_inverse=True)
        lab = torch.as_tensor(labels)
        centres = class_centres(torch.as_tensor(groups[0][keep]), lab, len(names))
        x = np.concatenate([g[keep] for g in groups])
        y = certainty_ratio(torch.as_tensor(x), lab.repeat(draws + 1), centres).numpy()
        heads[k] = fit_head(x, y, FitSettings(**{**asdict(settings.fit), "seed": settings.fit.seed + k}))
        heads[k].trained_on = {"fold_excluded": int(k), "people": int(len(names)), "images": int(keep.sum()),
                               "crops": int(len(x))}
    return heads


def face_scores(model, source, pairs, settings: QualitySettings, heads: dict, cache_dir=None) -> dict:
    """Similarities and per-face scores of the mixed-quality pair set."""
    heights = plan(len(pairs), settings.mixed)
    views = embed_specs(model, source, pair_specs(pairs, heights), flip="concat", cache_dir=cache_dir,
                        what="mixed-pairs")
    emb = views.reshape(len(views), -1)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    plain = views[:, 0]
    folds = np.repeat([p.fold for p in pairs], 2)
    learned = np.zeros(len(plain))
    for k, head in heads.items():
        learned[folds == k] = head.score(plain[folds == k])
    return {"similarity": np.sum(emb[0::2] * emb[1::2], axis=1), "same": np.array([p.same for p in pairs]),
            "heights": heights, "faces": {"learned": learned, "norm": np.linalg.norm(plain, axis=1),
                                          "resolution": true_resolution(heights.reshape(-1), model.spec.input_size[0])}}


def default_threshold(sim, same, quality, threshold: float, window: int = 200) -> dict:
    """The default quality threshold: the genuine comparisons sorted by pair quality, the highest-quality run
    of ``window`` consecutive ones that is at least half false non-matches at ``threshold``; the default is
    the pair quality at its middle (below it, a genuine comparison fails more often than it succeeds)."""
    quality = np.asarray(quality, np.float64)
    genuine = np.flatnonzero(same)
    order = genuine[discard_order(quality[genuine])]
    misses = np.concatenate([[0], np.cumsum(sim[order] < threshold)])
    local = (misses[window:] - misses[:-window]) / window  # the run starting at each genuine comparison
    hits = np.flatnonzero(local >= 0.5)
    i = int(hits[-1]) if len(hits) else 0
    t = float(quality[order][i + window // 2])
    return {"threshold": t, "window": window, "local_fnmr": float(local[i]),
            "fraction": float(np.mean(quality < t))}


def run_quality(model, source, pairs, settings: QualitySettings = QualitySettings(), cache_dir=None) -> dict:
    """Everything the quality results file and plots hold; ``heads`` too (not JSON)."""
    t0 = time.perf_counter()
    heads = fold_heads(model, source, pairs, settings, cache_dir)
    s = face_scores(model, source, pairs, settings, heads, cache_dir)
    sim, same = s["similarity"], s["same"]
    rows, curves = [], {}
    for fmr in settings.fmrs:
        t = fmr_threshold(sim, same, fmr)
        for name in SCORES:
            if name == "random":
                c = random_curve(sim, same, t, seed=settings.mixed.seed)
            else:
                f = s["faces"][name]
                c = fnmr_curve(sim, same, pair_quality(f[0::2], f[1::2]), t)
            curves[(name, fmr)] = c
            rows.append({"score": name, "fmr": fmr, "threshold": t, "fnmr_full": float(c[0]),
                         "fnmr_at_20": float(c[FRACTIONS <= settings.f_max + 1e-12][-1]),
                         "auc_20": area(c, FRACTIONS, settings.f_max)})
    table = []
    for name in SCORES:  # one row per score, the FMRs side by side (the docs table)
        row = {"score": name}
        for r in (r for r in rows if r["score"] == name):
            tag = f"{r['fmr']:.0e}".replace("e-0", "e-")
            row.update({f"auc_{tag}": r["auc_20"], f"fnmr0_{tag}": r["fnmr_full"], f"fnmr20_{tag}": r["fnmr_at_20"]})
        table.append(row)
    f = s["faces"]["learned"]
    t3 = fmr_threshold(sim, same, settings.fmrs[0])
    default = default_threshold(sim, same, pair_quality(f[0::2], f[1::2]), t3, settings.threshold_window)
    ship = heads[settings.shipped_fold]
    return {"rows": rows, "table": table, "curves": {f"{n}@{fmr:g}": c.tolist() for (n, fmr), c in curves.items()},
            "fractions": FRACTIONS.tolist(), "default": {**default, "score": "learned", "fmr": settings.fmrs[0]},
            "settings": asdict(settings), "n_pairs": len(pairs), "heads": heads, "shipped": ship,
            "seconds": time.perf_counter() - t0}
