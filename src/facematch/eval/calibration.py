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


def open_set_point_name(far: float) -> str:
    """``1e-2`` -> ``"open_set_far_1e-2"``: the 1:N operating point at that false-accept rate."""
    return f"open_set_{far_point_name(far)}"


def open_set_split(labels: Sequence[str], paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gallery, known probes, impostor probes)`` index arrays: the first image (by path) of every identity
    with two or more images is its gallery face and its other images are probes; every image of an identity
    with one image is an impostor probe (LFW's open-set protocol; docs/tools.md)."""
    by_id: dict[str, list[int]] = {}
    for i in np.argsort(np.asarray(paths, dtype=object), kind="stable"):
        by_id.setdefault(labels[i], []).append(int(i))
    gallery = [ix[0] for ix in by_id.values() if len(ix) > 1]
    known = [j for ix in by_id.values() if len(ix) > 1 for j in ix[1:]]
    impostors = [ix[0] for ix in by_id.values() if len(ix) == 1]
    return np.array(gallery, int), np.array(known, int), np.array(impostors, int)


def open_set_points(emb: np.ndarray, labels: Sequence[str], paths: Sequence[str],
                    fars: Sequence[float] = (1e-3,)) -> dict[str, dict]:
    """1:N operating points (``open_set_far_<rate>``) from the calibration images themselves: the threshold
    a gallery search needs so that a stranger's best match passes it at the target rate, for a gallery of
    this size (``gallery_size``: a larger gallery needs a higher threshold). Rates as in
    :mod:`facematch.eval.open_set`: ``far`` (FPIR) over impostor probes, ``tar`` = DIR over known ones."""
    from facematch.eval.metrics import l2_normalize
    from facematch.eval.open_set import open_set_report

    labels = np.asarray(labels, dtype=object)
    g, k, imp = open_set_split(labels, paths)
    if len(g) < 2 or len(k) == 0 or len(imp) == 0:
        return {}
    x = l2_normalize(emb).astype(np.float32)
    sims = x @ x[g].T  # one gallery face per identity: its best face is that face
    top = sims.argmax(1)
    rep = open_set_report(sims[k, top[k]], labels[g][top[k]] == labels[k], sims[imp, top[imp]], fars=fars)
    return {open_set_point_name(far): {"rule": "open_set", "target_far": float(far), "threshold": p["threshold"],
                                       "far": p["far"], "tar": p["dir"], "gallery_size": int(len(g)),
                                       "n_known": rep["n_known"], "n_impostors": rep["n_impostors"],
                                       "rank_1": rep["rank_1"]}
            for far, p in zip(fars, rep["dir_at_far"].values())}
