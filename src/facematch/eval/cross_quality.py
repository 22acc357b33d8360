"""The cross-quality protocol: one image of each pair degraded, the other untouched (``data.degrade.side``).

Practice matches a small, blurred camera face (the probe) against a full-resolution enrolment photo (the
gallery). Here the **second** image of every pair of ``pairs.txt`` is the probe, degraded by ``data.degrade``
(draw 0, as every evaluation crop), and the **first** is the gallery image, scored undegraded; the choice is
fixed per pair (the pairs file's order), as XQLFW fixes its degraded image per pair. An image that is first in
one pair and second in another is embedded both ways.

Scoring is the 10-fold protocol of :func:`facematch.eval.ten_fold.ten_fold_verification` (the folds of the
pairs file, a threshold per fold chosen on the other nine folds), except for the mean: with
``protocol.subtract_mean`` each **side** has its own mean, taken over that side's features of the training
folds' pairs (the gallery mean over the first images, undegraded; the probe mean over the second images,
degraded), and each side's features have their own mean subtracted before scoring. The symmetric protocol
pools both sides into one mean; a degraded face and a sharp one sit in different regions of the embedding
space, so one pooled mean would centre neither.

The two sides may be embedded by two models: the probe by a model adapted to small faces (the student), the
gallery by the full-resolution model it was distilled from (the teacher). :func:`cross_figures` scores every
pairing of one trained model and a teacher from embeddings the job has already computed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.data.pair_files import Pair
from facematch.errors import FacematchError
from facematch.eval.metrics import _as_same, score_metrics
from facematch.eval.ten_fold import cosine_scores, ten_fold_verification
from facematch.eval.verification import Protocol, Verification


def one_sided_ten_fold(gallery, probe, same, folds, distance: str = "cosine", subtract_mean: bool = False,
                       thresholds=None, tie: str = "middle") -> dict:
    """The 10-fold protocol on pairs (``gallery[i]``, ``probe[i]``) whose sides differ in quality (or model):
    :func:`~facematch.eval.ten_fold.ten_fold_verification` with each side's own mean. For every fold ``k``:
    with ``subtract_mean``, ``mu_g`` = the mean of ``gallery`` over the pairs outside fold ``k`` and ``mu_p``
    the same of ``probe``; pair ``i`` scores ``distance(g_i - mu_g, p_i - mu_p)`` (L2-normalised after the
    subtraction). The threshold maximising accuracy on the pairs outside ``k`` is applied to fold ``k``."""
    return ten_fold_verification(gallery, probe, same, folds, distance, subtract_mean, thresholds, tie,
                                 per_side_mean=True)


def _rows(emb: np.ndarray, paths: Sequence[str], rels: Sequence[str], what: str) -> np.ndarray:
    index = {p: i for i, p in enumerate(paths)}
    missing = [r for r in rels if r not in index]
    if missing:
        raise FacematchError(f"cannot score the cross-quality pairs: {len(missing)} {what} images were not "
                             f"embedded (e.g. {missing[0]})")
    return emb[[index[r] for r in rels]]


def cross_verification(pairs: Sequence[Pair], gallery: tuple[np.ndarray, Sequence[str]],
                       probe: tuple[np.ndarray, Sequence[str]], protocol: Protocol) -> Verification:
    """The cross-quality result of ``pairs``: ``gallery`` = (embeddings, paths) of the undegraded images
    (the first of each pair is looked up there), ``probe`` = those of the degraded images (the second of
    each pair). Returns a :class:`Verification` (its ``emb`` / ``paths``: the probe side's)."""
    pairs = list(pairs)
    g = _rows(*gallery, [p.a for p in pairs], "gallery-side")
    pr = _rows(*probe, [p.b for p in pairs], "probe-side")
    same, folds = np.array([p.same for p in pairs], bool), np.array([p.fold for p in pairs])
    try:
        tf = one_sided_ten_fold(g, pr, same, folds, protocol.distance, protocol.subtract_mean,
                                protocol.score_thresholds(), protocol.tie)
    except ValueError as err:
        raise FacematchError(f"cannot score the cross-quality pairs: {err}") from None
    ranked = tf["protocol_scores"]
    report = {k: tf[k] for k in ("accuracy_mean", "accuracy_std", "fold_accuracies", "fold_thresholds",
                                 "threshold_mean")}
    cos = cosine_scores(g, pr)
    report.update(distance=protocol.distance, subtract_mean=bool(protocol.subtract_mean), side="second",
                  mean="per side" if protocol.subtract_mean else "none")
    report.update(score_metrics(cos, ranked, _as_same(same), threshold=float(protocol.threshold), fars=protocol.fars))
    return Verification(report, list(probe[1]), np.asarray(probe[0]), np.asarray(same, bool), np.asarray(folds),
                        cos, np.asarray(ranked))


def _figures(res: Verification, fold: int | None) -> dict:
    """Fold ``fold``'s result (per-fold scoring), or the 10-fold figures (an evaluation)."""
    if fold is not None:
        return res.fold(fold)
    return {k: res.report[k] for k in ("accuracy_mean", "accuracy_std", "fold_accuracies")}


def cross_figures(pairs: Sequence[Pair], degraded: Verification, clean: Verification, protocol: Protocol,
                  fold: int | None = None, teacher: Verification | None = None) -> tuple[Verification, dict]:
    """Every figure of one model on degraded data, from the embeddings the job already made: ``degraded``
    (every image degraded: the symmetric protocol) and ``clean`` (every image undegraded), and, with a
    ``teacher`` (its :class:`Verification` on the undegraded images), the teacher as the gallery side.

    Returns the cross-quality :class:`Verification` (same model both sides) and ``{"symmetric", "cross",
    "undegraded"[, "cross_teacher", "teacher_undegraded"]}``: each fold ``fold``'s result (per-fold scoring)
    or the 10-fold figures."""
    cross = cross_verification(pairs, (clean.emb, clean.paths), (degraded.emb, degraded.paths), protocol)
    out = {"symmetric": _figures(degraded, fold), "cross": _figures(cross, fold),
           "undegraded": _figures(clean, fold)}
    if teacher is not None:
        mixed = cross_verification(pairs, (teacher.emb, teacher.paths), (degraded.emb, degraded.paths), protocol)
        out["cross_teacher"] = _figures(mixed, fold)
        out["teacher_undegraded"] = _figures(teacher, fold)
    return cross, out


#: The figures a cross-quality job records, as ``<name>_accuracy_mean`` / ``_std`` in a report row.
FIGURES = ("symmetric", "cross", "undegraded", "cross_teacher", "teacher_undegraded")


def flat(figures: dict) -> dict:
    """An evaluation's figures as report keys: ``cross_accuracy_mean``, ``cross_accuracy_std``, ..."""
    return {f"{name}_{k}": v for name, fig in figures.items() for k, v in fig.items() if k.startswith("accuracy")}


def combine_fold_figures(jobs: list[dict]) -> dict:
    """A per-fold multirun's cross-quality figures: each one's fold accuracies' mean and population std,
    where every job has it."""
    out = {}
    for name in FIGURES:
        accs = [(m.get(name) or {}).get("fold_accuracy") for m in jobs]
        if jobs and all(a is not None for a in accs):
            out[f"{name}_accuracy_mean"] = float(np.mean(accs))
            out[f"{name}_accuracy_std"] = float(np.std(accs))
    return out
