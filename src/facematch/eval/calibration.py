"""Operating points of a model from labelled pairs: the thresholds ``facematch-compare`` and the gallery use.

Pure functions on raw cosine scores (no mean subtraction, no folds: a practitioner's two photos are
scored exactly so). For each target false-accept rate the threshold is the lowest one whose FAR on the
different pairs is within the budget (:func:`facematch.eval.metrics.val_at_far`, read conservatively:
the FAR reported is a countable operating point); ``best_accuracy`` is the accuracy-maximising threshold
over all pairs (:func:`facematch.eval.ten_fold.best_accuracy_threshold`). Each point records the FAR and
TAR (true-accept rate) it reaches on the calibration pairs and how many pairs stand behind it: with
3,000 different pairs FAR 1e-3 is three false accepts, so its threshold is known to about that grain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.eval.metrics import _scores_labels, far_key, val_at_far
from facematch.eval.ten_fold import best_accuracy_threshold

BEST_ACCURACY = "best_accuracy"


def far_point_name(far: float) -> str:
    """``1e-3`` -> ``"far_1e-3"``: the name of the operating point at that false-accept rate."""
    return f"far_{far_key(float(far))}"


def rates_at(scores, same, threshold: float) -> dict:
    """FAR, TAR and accuracy of the rule ``score >= threshold``."""
    s, y = _scores_labels(scores, same)
    pred = s >= threshold
    return {"far": float(pred[~y].mean()) if (~y).any() else 0.0,
            "tar": float(pred[y].mean()) if y.any() else 0.0,
            "accuracy": float((pred == y).mean())}


def operating_points(scores, same, fars: Sequence[float] = (1e-3,)) -> dict[str, dict]:
    """``{name: {"rule", "threshold", "far", "tar", "accuracy", ...}}`` for each target FAR and the best
    accuracy (module docstring)."""
    s, y = _scores_labels(scores, same)
    points: dict[str, dict] = {}
    for far in fars:
        v = val_at_far(s, y, float(far))
        points[far_point_name(far)] = {"rule": "far", "target_far": float(far), "threshold": v["threshold"],
                                       **rates_at(s, y, v["threshold"])}
    t, _ = best_accuracy_threshold(s, y)
    points[BEST_ACCURACY] = {"rule": BEST_ACCURACY, "threshold": float(t), **rates_at(s, y, t)}
    for p in points.values():
        p.update(n_same=int(y.sum()), n_different=int((~y).sum()))
    return points
