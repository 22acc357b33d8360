"""Nearest-template identification: the FaceNet reproduction's accuracy (``Code/eval_model.py``), as pure
functions beside :mod:`facematch.eval.identification`.

Each class's template is the mean embedding of ``per_class`` images drawn at random, with replacement, from
that class's pool; a probe is assigned to the template at the smallest Euclidean distance. Embeddings are
L2-normalised first (what the trained net outputs, up to the head's scale, which changes no ranking).
Rank-k: the probe's class among the k nearest templates (exact ties count in the probe's favour). Reported
as ``template_rank_1`` / ``template_rank_5``; the first is what the original's "Rank5" row most plausibly
reports (templates of 5 images: src/facematch/report/published.yaml).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.eval.metrics import l2_normalize


def draw_templates(pool_labels, per_class: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, picks)``: the sorted classes of ``pool_labels`` and, per class, ``per_class`` positions
    into the pool drawn uniformly with replacement from that class's (``np.random.default_rng(seed)``,
    classes in sorted order), shape ``(n_classes, per_class)``."""
    y = np.asarray(pool_labels).reshape(-1)
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    picks = np.stack([rng.choice(np.flatnonzero(y == c), per_class) for c in classes]) if classes.size else \
        np.zeros((0, per_class), dtype=np.int64)
    return classes, picks


def draw_probes(labels, n: int, seed: int = 0) -> np.ndarray:
    """``n`` positions into ``labels`` drawn as the original drew its probes (the anchors of random
    triplets): a class uniformly among those with two or more items, then one of its items uniformly."""
    y = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    multi = classes[counts >= 2]
    if multi.size == 0:
        raise ValueError("no class has two or more images: no probe can be drawn")
    return np.array([rng.choice(np.flatnonzero(y == c)) for c in rng.choice(multi, n)], dtype=np.int64)


def template_accuracy(pool_emb, pool_labels, probe_emb, probe_labels, per_class: int = 5, seed: int = 0,
                      ks: Sequence[int] = (1, 5)) -> dict:
    """``{"template_rank_<k>": ..., "n_probes", "n_templates", "per_class", "seed"}``: probes against the
    templates of the pool's classes (:func:`draw_templates`). Every probe class must be in the pool."""
    pool = l2_normalize(np.asarray(pool_emb, dtype=np.float64))
    probes = l2_normalize(np.asarray(probe_emb, dtype=np.float64))
    pl = np.asarray(probe_labels).reshape(-1)
    if pool.ndim != 2 or probes.ndim != 2 or pool.shape[1] != probes.shape[1] or probes.shape[0] != pl.size:
        raise ValueError(f"shape mismatch: pool {pool.shape}, probes {probes.shape}, {pl.size} probe labels")
    if pl.size == 0:
        raise ValueError("no probes")
    classes, picks = draw_templates(pool_labels, per_class, seed)
    col = np.searchsorted(classes, pl)
    if np.any(col >= classes.size) or not np.all(classes[np.minimum(col, classes.size - 1)] == pl):
        raise ValueError("probe classes missing from the template pool")
    templates = pool[picks].mean(axis=1)  # (n_classes, D)
    d2 = (probes**2).sum(1)[:, None] - 2 * probes @ templates.T + (templates**2).sum(1)[None, :]
    own = d2[np.arange(pl.size), col]
    rank = (d2 < own[:, None]).sum(axis=1)
    out = {f"template_rank_{int(k)}": float(np.mean(rank < int(k))) for k in ks}
    out.update({"n_probes": int(pl.size), "n_templates": int(classes.size), "per_class": int(per_class),
                "seed": int(seed)})
    return out


def template_report(emb, labels, n_probes: int = 2000, per_class: int = 5, seed: int = 0,
                    min_images: int = 3) -> dict:
    """The LFW side of the original's metric on one set of images (``Code/eval_model.py`` ``testValues`` on
    the LFW lists): the classes with ``min_images`` or more, templates from all their images, ``n_probes``
    probes drawn by :func:`draw_probes` (``seed + 1``) from the same images. As in the original, a probe can
    be among the images averaged into its own class's template: ``probes_in_own_template`` is the fraction of
    probes that are (``n_images``: the images of the classes kept)."""
    y = np.asarray(labels).reshape(-1)
    classes, counts = np.unique(y, return_counts=True)
    keep = np.flatnonzero(np.isin(y, classes[counts >= min_images]))
    if keep.size == 0:
        raise ValueError(f"no class has {min_images} or more images")
    e, yk = np.asarray(emb)[keep], y[keep]
    probes = draw_probes(yk, n_probes, seed + 1)
    out = template_accuracy(e, yk, e[probes], yk[probes], per_class, seed)
    kept_classes, picks = draw_templates(yk, per_class, seed)  # the draw template_accuracy made
    own = picks[np.searchsorted(kept_classes, yk[probes])]
    out.update({"probes_in_own_template": float(np.mean((own == probes[:, None]).any(axis=1))),
                "n_images": int(keep.size)})
    return out
