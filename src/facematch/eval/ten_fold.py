"""Pair scores and the LFW View 2 10-fold protocol (pure functions; pooled metrics in :mod:`.metrics`).

Written by hand: no library implements "choose the threshold on 9 folds (optionally after subtracting the 9
folds' mean feature), score the 10th".
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.eval.metrics import (
    _as_same,
    _best_threshold,
    _check_pairs,
    l2_normalize,
    score_metrics,
)

#: Pair scores: cosine similarity, or sq_l2 = minus the squared L2 distance of the L2-normalised features.
DISTANCES = ("cosine", "sq_l2")


def _accuracy_per_threshold(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of ``score >= t`` for every ``t`` at once (sorted counts, O((n + T) log n))."""
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")  # positives with score >= t
    tn = np.searchsorted(neg, thresholds, side="left")  # negatives with score < t
    return (tp + tn) / s.size


# ------------------------------------------------------------------------------------------ scores


def cosine_scores(emb_a, emb_b) -> np.ndarray:
    """(N,) cosine similarity of row i of ``emb_a`` with row i of ``emb_b``, in [-1, 1]."""
    a, b = _check_pairs(emb_a, emb_b)
    return np.einsum("nd,nd->n", l2_normalize(a), l2_normalize(b))


def sq_l2_scores(emb_a, emb_b) -> np.ndarray:
    """(N,) ``-||a_i - b_i||^2`` on the embeddings as given (no normalisation); higher = closer."""
    a, b = _check_pairs(emb_a, emb_b)
    d = a - b
    return -np.einsum("nd,nd->n", d, d)


def pair_scores(emb_a, emb_b, distance: str = "cosine") -> np.ndarray:
    """Dispatch on ``distance`` (``"cosine"`` or ``"sq_l2"``, scored as minus the squared distance)."""
    if distance == "cosine":
        return cosine_scores(emb_a, emb_b)
    if distance == "sq_l2":
        return sq_l2_scores(emb_a, emb_b)
    raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")


# ----------------------------------------------------------------------------- 10-fold (LFW View 2)


def best_accuracy_threshold(scores, same, thresholds=None, tie: str = "middle") -> tuple[float, float]:
    """``(threshold, accuracy)`` maximising the accuracy of ``score >= threshold`` on these pairs.

    Searched over ``thresholds`` if given (e.g. ``np.linspace(-1, 1, 20001)`` to mimic the reference
    scripts' grid), otherwise over :func:`candidate_thresholds` (exact: every distinct split).
    Ties: see :func:`_pick_best` (``tie``: middle | first).
    """
    return _best_threshold(scores, same, thresholds, _accuracy_per_threshold, tie)


def ten_fold_verification(
    feats_a,
    feats_b,
    same,
    folds,
    distance: str = "cosine",
    subtract_mean: bool = False,
    thresholds=None,
    tie: str = "middle",
    per_side_mean: bool = False,
) -> dict:
    """The LFW View 2 protocol (also works for any number of folds >= 2).

    For every fold ``k`` (the distinct values of ``folds``, ascending; ``folds[i]`` is the fold of
    pair ``i`` as read from ``pairs.txt``, used exactly as passed):

    1. training pairs = all pairs whose fold is not ``k``;
    2. if ``subtract_mean``: ``mu`` = mean over the training pairs' features of *both* sides
       (an image used in several pairs counts several times, as in the reference scripts); subtract
       ``mu`` from every feature, then L2-normalise; with ``per_side_mean`` (the cross-quality protocol, whose
       two sides differ in quality or model) each side's own mean over the training pairs instead. Otherwise the features are scored as given (L2-normalised
       first for ``sq_l2``, as insightface's verification does);
    3. score with ``distance``; choose the threshold maximising accuracy on the training pairs
       (:func:`best_accuracy_threshold` over ``thresholds``, same-iff-``score >= t``, tie rule ``tie``);
    4. accuracy of that threshold on fold ``k``.

    Returns ``fold_accuracies`` (fractions, one per fold, fold order), ``accuracy_mean``,
    ``accuracy_std`` (*population* std, ddof=0, as ``np.std`` in the facenet / insightface LFW
    scripts), ``fold_thresholds``, ``threshold_mean``, ``folds`` (fold ids), ``std_ddof`` (0), and
    ``protocol_scores``: every pair's score as the protocol scored it in its own fold's turn (with the
    other folds' mean subtracted when ``subtract_mean``), a float array in pair order.
    """
    a, b = _check_pairs(feats_a, feats_b)
    y = _as_same(same)
    f = np.asarray(folds).reshape(-1)
    if not (a.shape[0] == y.size == f.size):
        raise ValueError(f"lengths differ: {a.shape[0]} pairs, {y.size} labels, {f.size} folds")
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError("the 10-fold protocol needs at least 2 distinct folds")

    raw_scores = None
    if not subtract_mean:
        raw_scores = pair_scores(l2_normalize(a), l2_normalize(b), distance) if distance == "sq_l2" else pair_scores(a, b, distance)
    accs, thrs = [], []
    protocol_scores = np.empty(y.size, dtype=np.float64)
    for k in fold_ids:
        test = f == k
        train = ~test
        if subtract_mean and per_side_mean:  # sides of different quality (or models): each its own mean
            mu_a, mu_b = a[train].mean(axis=0, keepdims=True), b[train].mean(axis=0, keepdims=True)
            scores = pair_scores(l2_normalize(a - mu_a), l2_normalize(b - mu_b), distance)
        elif subtract_mean:
            mu = np.concatenate([a[train], b[train]]).mean(axis=0, keepdims=True)
            scores = pair_scores(l2_normalize(a - mu), l2_normalize(b - mu), distance)
        else:
            scores = raw_scores
        thr, _ = best_accuracy_threshold(scores[train], y[train], thresholds, tie)
        acc = float(np.mean((scores[test] >= thr) == y[test]))
        protocol_scores[test] = scores[test]
        accs.append(acc)
        thrs.append(thr)
    return {
        "fold_accuracies": accs,
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs, ddof=0)),
        "std_ddof": 0,
        "fold_thresholds": thrs,
        "threshold_mean": float(np.mean(thrs)),
        "folds": [v.item() if hasattr(v, "item") else v for v in fold_ids],
        "protocol_scores": protocol_scores,
    }


def verification_report(
    feats_a,
    feats_b,
    same,
    folds,
    *,
    distance: str = "cosine",
    subtract_mean: bool = False,
    threshold: float = 0.6,
    fars: Sequence[float] = (1e-3, 1e-2),
    thresholds=None,
    tie: str = "middle",
    return_scores: bool = False,
) -> dict | tuple[dict, np.ndarray]:
    """Every verification number for one set of pair features, JSON-serialisable. ``return_scores``: also
    return the protocol scores, ``(report, scores)``.

    - 10-fold keys (``accuracy_mean``, ``accuracy_std``, ``fold_accuracies``, ``fold_thresholds``,
      ``threshold_mean``) follow :func:`ten_fold_verification` with ``distance`` / ``subtract_mean``.
    - The pooled keys come from :func:`score_metrics` on the **protocol scores** (each pair scored as in
      its fold's turn, so with ``subtract_mean`` the other folds' mean is subtracted) and raw cosine.
    """
    a, b = _check_pairs(feats_a, feats_b)
    y = _as_same(same)
    tf = ten_fold_verification(a, b, y, folds, distance, subtract_mean, thresholds, tie)
    ps = tf["protocol_scores"]
    report = {k: tf[k] for k in ("accuracy_mean", "accuracy_std", "fold_accuracies", "fold_thresholds",
                                 "threshold_mean")}
    report.update(distance=distance, subtract_mean=bool(subtract_mean))
    report.update(score_metrics(cosine_scores(a, b), ps, y, threshold=threshold, fars=fars))
    return (report, ps) if return_scores else report
