"""Face-verification metrics as pure functions: numpy arrays in, Python numbers / dicts out.

One decision rule everywhere in this module: a pair is predicted *same* iff ``score >= threshold``,
with scores oriented so that higher means more similar. This is scikit-learn's ``roc_curve``
convention, so every threshold reported here (10-fold, VAL@FAR, EER, F1) can be read the same way.

What comes from libraries and what is written here, and why:

- ROC curve and AUC: :func:`sklearn.metrics.roc_curve` / :func:`sklearn.metrics.roc_auc_score`.
- Accuracy / precision / recall / F1 at a fixed threshold: :mod:`sklearn.metrics`.
- LFW View 2 10-fold protocol: :mod:`facematch.eval.ten_fold`.
- VAL@FAR: by hand on top of sklearn's ROC. No library reports TAR at a FAR *with the threshold
  that achieves it*; the rule is a few lines (see :func:`val_at_far`).
- EER: torchmetrics' ``BinaryEER`` gives the value but not the threshold; :func:`equal_error_rate`
  uses the same definition (nearest ROC point) on sklearn's ROC and also returns the threshold.
- F1 over a grid of thresholds: counted with ``searchsorted`` because calling ``f1_score`` once per
  grid point is O(n * grid); the counts are exactly what ``f1_score`` computes (tests cross-check).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn import metrics as skm


# ----------------------------------------------------------------------------------------- helpers


def _as_2d(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (N, D) array, got shape {arr.shape}")
    return arr


def _check_pairs(emb_a, emb_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(emb_a, "emb_a"), _as_2d(emb_b, "emb_b")
    if a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _as_same(same) -> np.ndarray:
    """Labels as a bool array; only bool or 0/1 accepted (a -1/+1 flag vector, as in the reference
    LFW scripts, would otherwise silently turn every -1 into True)."""
    y = np.asarray(same).reshape(-1)
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("same must be bool or 0/1 (1 = same person); got other values")
        y = y.astype(bool)
    return y


def _scores_labels(scores, same) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = _as_same(same)
    if s.shape != y.shape:
        raise ValueError(f"scores and same must have the same length, got {s.size} and {y.size}")
    if s.size == 0:
        raise ValueError("no pairs given")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return s, y


def _require_both_classes(y: np.ndarray, what: str) -> None:
    if y.all() or not y.any():
        raise ValueError(f"{what} needs both same and different pairs")


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (rows of zeros stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def far_key(far: float) -> str:
    """``1e-3`` -> ``"1e-3"``, ``0.0015`` -> ``"1.5e-3"``: the suffix of the ``val_at_far_*`` keys."""
    mantissa, exponent = f"{far:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def candidate_thresholds(scores) -> np.ndarray:
    """Thresholds that realise every distinct split of ``scores`` under ``score >= t``.

    The midpoints between consecutive sorted unique scores, plus one half-gap below the smallest
    (everything predicted same) and one half-gap above the largest (everything predicted different).
    No training score ever equals a candidate, so the ``>=`` vs ``>`` question never arises on the
    data the threshold was chosen on.
    """
    u = np.unique(np.asarray(scores, dtype=np.float64).reshape(-1))
    if u.size == 0:
        raise ValueError("no scores given")
    if u.size == 1:
        return np.array([u[0] - 0.5, u[0] + 0.5])
    mids = u[:-1] + np.diff(u) / 2.0
    lo = u[0] - (u[1] - u[0]) / 2.0
    hi = u[-1] + (u[-1] - u[-2]) / 2.0
    return np.concatenate([[lo], mids, [hi]])


#: Tie rules of a threshold search: ``middle`` (below) or ``first``, the first maximiser in the order the
#: candidates are given (``np.argmax``: insightface's rule on its threshold grid).
TIE_RULES = ("middle", "first")


def _pick_best(candidates: np.ndarray, values: np.ndarray, tie: str = "middle") -> tuple[float, float]:
    """Tie rule for every threshold search here: among the candidates that attain the maximum of
    ``values``, take the middle one in ascending order (the lower of the two middles when their
    number is even); ``tie="first"``: the first of them in the order given.

    The reference LFW scripts (sphereface / MobileFaceNet ``getThreshold``) average all grid
    thresholds that tie for the best accuracy; when the tied thresholds are not contiguous that
    average can land on a non-maximiser. The middle maximiser is always a maximiser, and for a
    contiguous plateau it is its centre, i.e. the same answer up to grid resolution.
    """
    best = values.max()
    if tie == "first":
        pick = int(np.argmax(values))
        return float(candidates[pick]), float(best)
    idx = np.flatnonzero(values == best)
    order = np.argsort(candidates[idx], kind="stable")
    pick = idx[order[(idx.size - 1) // 2]]
    return float(candidates[pick]), float(best)


def _best_threshold(scores, same, thresholds, per_threshold, tie: str = "middle") -> tuple[float, float]:
    """The threshold maximising ``per_threshold(s, y, thresholds)`` over ``thresholds`` (default: every
    distinct split, :func:`candidate_thresholds`) and its value; ties: :func:`_pick_best`."""
    s, y = _scores_labels(scores, same)
    t = candidate_thresholds(s) if thresholds is None else np.asarray(thresholds, np.float64).ravel()
    if t.size == 0:
        raise ValueError("empty threshold grid")
    return _pick_best(t, per_threshold(s, y, t), tie)


# -------------------------------------------------------------------------------- ROC, VAL, EER


def roc_curve(scores, same) -> dict:
    """``{"fpr", "tpr", "thresholds"}`` numpy arrays from :func:`sklearn.metrics.roc_curve`.

    Every distinct score is kept (``drop_intermediate=False``); point ``i`` is the rule
    ``score >= thresholds[i]``; ``thresholds[0]`` is ``inf`` (the (0, 0) point).
    """
    s, y = _scores_labels(scores, same)
    _require_both_classes(y, "a ROC curve")
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr}


def roc_auc(scores, same) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`)."""
    s, y = _scores_labels(scores, same)
    _require_both_classes(y, "AUC")
    return float(skm.roc_auc_score(y, s))


def _finite_threshold(thr: float, s: np.ndarray) -> float:
    # sklearn's first ROC threshold is +inf ("accept nothing"); report the next float above the top
    # score instead, which is the same rule and stays JSON-serialisable.
    return float(np.nextafter(s.max(), np.inf)) if not math.isfinite(thr) else float(thr)


def val_at_far(scores, same, far: float) -> dict:
    """TAR (VAL) at a false-accept-rate budget: ``{"val", "far", "threshold", "target_far"}``.

    The threshold is the lowest ROC threshold whose false-accept rate on the different pairs is
    ``<= far``; ``val`` is the fraction of same pairs with ``score >= threshold`` and ``far`` the
    FAR actually achieved (``<= target_far``). No interpolation: this is the ROC step function read
    conservatively, so the reported FAR is a real, countable operating point. (facenet's
    ``calculate_val`` instead interpolates the threshold linearly in FAR, which can overshoot the
    budget.) With ``n`` different pairs at most ``floor(far * n)`` of them may be accepted.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    s, _ = _scores_labels(scores, same)
    roc = roc_curve(scores, same)
    fpr, tpr, thr = roc["fpr"], roc["tpr"], roc["thresholds"]
    ok = np.flatnonzero(fpr <= far + 1e-12)  # fpr is non-decreasing and fpr[0] == 0
    i = ok[-1]  # highest TPR within budget; among equal TPR the lowest threshold
    return {
        "val": float(tpr[i]),
        "far": float(fpr[i]),
        "threshold": _finite_threshold(thr[i], s),
        "target_far": float(far),
    }


def equal_error_rate(scores, same) -> tuple[float, float]:
    """``(eer, threshold)``: the ROC point minimising ``|FAR - FRR|``, EER = ``(FAR + FRR) / 2`` there.

    Same definition as torchmetrics' ``BinaryEER`` (nearest operating point, first one on ties), so
    the value matches it exactly; the threshold is that point's ``score >= threshold`` rule.
    """
    s, _ = _scores_labels(scores, same)
    roc = roc_curve(scores, same)
    fpr, fnr = roc["fpr"], 1.0 - roc["tpr"]
    i = int(np.argmin(np.abs(fpr - fnr)))
    return float((fpr[i] + fnr[i]) / 2.0), _finite_threshold(roc["thresholds"][i], s)


# ------------------------------------------------------------------------ fixed-threshold metrics


def metrics_at_threshold(scores, same, threshold: float = 0.6) -> dict:
    """``{"accuracy", "f1", "precision", "recall", "threshold"}`` of ``score >= threshold``.

    The original experiments' metric (raw cosine similarity at 0.6). Undefined precision / F1
    (nothing predicted same) are reported as 0.
    """
    s, y = _scores_labels(scores, same)
    pred = s >= threshold
    p, r, f1, _ = skm.precision_recall_fscore_support(
        y, pred, average="binary", pos_label=True, zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(f1),
        "precision": float(p),
        "recall": float(r),
        "threshold": float(threshold),
    }


def _f1_per_threshold(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    fn = pos.size - tp
    denom = 2 * tp + fp + fn
    return np.divide(2.0 * tp, denom, out=np.zeros(thresholds.shape, np.float64), where=denom > 0)


def f1_curve(scores, same, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, f1s)``: F1 of ``score >= t`` at every ``t`` (default: 501 points spanning the
    scores). Identical to ``sklearn.metrics.f1_score`` per point, counted in one vectorised pass."""
    s, y = _scores_labels(scores, same)
    if thresholds is None:
        thresholds = np.linspace(s.min(), s.max(), 501)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    return t, _f1_per_threshold(s, y, t)


def best_f1_threshold(scores, same, thresholds=None) -> tuple[float, float]:
    """``(threshold, f1)`` maximising F1, over ``thresholds`` or, by default, every distinct split
    (:func:`candidate_thresholds`). Ties: the middle maximiser (:func:`_pick_best`)."""
    return _best_threshold(scores, same, thresholds, _f1_per_threshold)


# ---------------------------------------------------------------------------------------- report


def score_metrics(cosine, ranked, same, *, threshold: float = 0.6, fars: Sequence[float] = (1e-3, 1e-2)) -> dict:
    """The pooled (not per-fold) numbers of a set of scored pairs: AUC, EER and VAL@FAR on the protocol
    scores ``ranked``; accuracy, F1, precision, recall at the fixed ``threshold`` and the best-F1
    threshold on the raw ``cosine`` scores (the original experiments' 0.6 is a raw-cosine threshold).
    ``facematch-eval`` and ``facematch-report``'s pooled per-fold rows both use it."""
    y = _as_same(same)
    s, ps = np.asarray(cosine, np.float64), np.asarray(ranked, np.float64)
    fixed = metrics_at_threshold(s, y, threshold)
    eer, eer_thr = equal_error_rate(ps, y)
    bf1_thr, bf1 = best_f1_threshold(s, y)
    out = {"global_scores": "cosine", "ranking_scores": "protocol", "auc": roc_auc(ps, y), "eer": eer,
           "eer_threshold": eer_thr}
    for far in fars:
        v = val_at_far(ps, y, far)
        out[f"val_at_far_{far_key(far)}"] = v["val"]
        out[f"val_at_far_{far_key(far)}_threshold"] = v["threshold"]
    out.update({
        "threshold": fixed["threshold"], "accuracy_at_threshold": fixed["accuracy"], "f1_at_threshold": fixed["f1"],
        "precision_at_threshold": fixed["precision"], "recall_at_threshold": fixed["recall"],
        "best_f1_threshold": bf1_thr, "best_f1": bf1,
        "n_pairs": int(y.size), "n_same": int(y.sum()), "n_different": int((~y).sum()),
    })
    return out
