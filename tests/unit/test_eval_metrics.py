"""Hand-checkable tests for facematch.eval.metrics (synthetic data only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score, roc_curve as sk_roc_curve

from facematch.eval import metrics as P
from facematch.eval import ten_fold as T


def feats_with_cosine(scores) -> tuple[np.ndarray, np.ndarray]:
    """2-D pair features whose cosine similarity is exactly ``scores`` (a = x-axis, b at angle)."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.stack([np.ones_like(s), np.zeros_like(s)], axis=1)
    b = np.stack([s, np.sqrt(1.0 - s**2)], axis=1)
    return a, b


def separable_scores(n_folds=10, per_fold=60, seed=0):
    rng = np.random.default_rng(seed)
    n = n_folds * per_fold
    same = np.tile(np.r_[np.ones(per_fold // 2, bool), np.zeros(per_fold // 2, bool)], n_folds)
    scores = np.where(same, rng.uniform(0.5, 0.95, n), rng.uniform(-0.5, 0.4, n))
    folds = np.repeat(np.arange(n_folds), per_fold)
    return scores, same, folds


def noisy_scores(n=600, seed=1):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    scores = np.clip(np.where(same, rng.normal(0.55, 0.2, n), rng.normal(0.15, 0.2, n)), -0.99, 0.99)
    return scores, same


# ------------------------------------------------------------------------------------------ scores


def test_scores_by_hand():
    a = np.array([[3.0, 4.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([[3.0, 4.0], [0.0, 2.0], [-2.0, -2.0]])
    np.testing.assert_allclose(T.cosine_scores(a, b), [1.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(T.sq_l2_scores(a, b), [0.0, -5.0, -18.0])
    with pytest.raises(ValueError):
        T.cosine_scores(a, b[:2])


def test_candidate_thresholds_are_midpoints_plus_ends():
    np.testing.assert_allclose(P.candidate_thresholds([0.3, 0.1, 0.3, 0.5]), [0.0, 0.2, 0.4, 0.6], atol=1e-12)


# ----------------------------------------------------------------------------------------- 10-fold


def test_separable_gives_perfect_everything():
    scores, same, folds = separable_scores()
    a, b = feats_with_cosine(scores)
    r = T.ten_fold_verification(a, b, same, folds)
    assert r["fold_accuracies"] == [1.0] * 10
    assert r["accuracy_mean"] == 1.0 and r["accuracy_std"] == 0.0
    # every threshold sits in the gap between the largest different and the smallest same score
    assert all(scores[~same].max() < t < scores[same].min() for t in r["fold_thresholds"])
    assert P.roc_auc(scores, same) == 1.0
    assert P.equal_error_rate(scores, same)[0] == 0.0
    assert P.val_at_far(scores, same, 1e-3)["val"] == 1.0


def test_hand_worked_two_folds():
    # fold 0: 0.9 same, 0.4 same, 0.5 diff, 0.1 diff
    # fold 1: 0.8 same, 0.6 same, 0.3 diff, 0.2 diff
    #
    # Test fold 0, train on fold 1 (sorted 0.2d 0.3d 0.6s 0.8s): candidates 0.15 0.25 0.45 0.7 0.9
    #   give training accuracy .50 .75 1.0 .75 .50 -> threshold 0.45.
    #   Fold 0 at >= 0.45: 0.9 ok, 0.4 missed, 0.5 false accept, 0.1 ok -> 2/4 = 0.5.
    # Test fold 1, train on fold 0 (sorted 0.1d 0.4s 0.5d 0.9s): candidates 0.05 0.25 0.45 0.7 0.95
    #   give .50 .75 .50 .75 .50: tie between 0.25 and 0.7, the lower middle maximiser -> 0.25.
    #   Fold 1 at >= 0.25: 0.8 ok, 0.6 ok, 0.3 false accept, 0.2 ok -> 3/4 = 0.75.
    # mean 0.625; population std 0.125 (the sample std would be 0.1768); thresholds mean 0.35.
    scores = np.array([0.9, 0.4, 0.5, 0.1, 0.8, 0.6, 0.3, 0.2])
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    a, b = feats_with_cosine(scores)
    r = T.ten_fold_verification(a, b, same, folds)
    assert r["fold_accuracies"] == pytest.approx([0.5, 0.75])
    assert r["fold_thresholds"] == pytest.approx([0.45, 0.25])
    assert r["accuracy_mean"] == pytest.approx(0.625)
    assert r["accuracy_std"] == pytest.approx(0.125)
    assert r["threshold_mean"] == pytest.approx(0.35)
    assert r["folds"] == [0, 1]
    # The same search on a 0.001 grid (as the reference scripts do). Test fold 0: the plateau
    # (0.3, 0.6] is the only maximiser, its middle grid point is 0.45 -> same answer. Test fold 1:
    # the tied grid points are (0.1, 0.4] (300 points) and (0.5, 0.9] (400 points); the middle one
    # of those 700 (index 349) is the 50th of the second plateau, 0.55, and fold 1 at >= 0.55 is
    # 4/4 correct. (Grid ties weigh plateaus by width; the exact midpoint search does not.)
    grid = np.linspace(-1, 1, 2001)
    rg = T.ten_fold_verification(a, b, same, folds, thresholds=grid)
    # (+-1 grid step: whether a plateau's end point is in depends on float rounding of 0.3 / 0.6)
    assert rg["fold_thresholds"] == pytest.approx([0.45, 0.55], abs=1.5e-3)
    assert rg["fold_accuracies"] == pytest.approx([0.5, 1.0])


def test_fold_assignment_is_exactly_the_one_passed():
    scores, same, folds = separable_scores(seed=3)
    # fold 3 gets every label wrong; its scores sit at the extremes (same 0.85..0.95, different
    # -0.5..-0.4) so that, flipped, they cannot pull the training threshold out of the 0.4..0.5 gap
    f3 = folds == 3
    rng = np.random.default_rng(4)
    scores[f3] = np.where(same[f3], rng.uniform(0.85, 0.95, f3.sum()), rng.uniform(-0.5, -0.4, f3.sum()))
    flipped = same.copy()
    flipped[f3] = ~flipped[f3]
    # shuffle the pair order: the fold of a pair must follow the pair, not its position
    perm = np.random.default_rng(0).permutation(scores.size)
    a, b = feats_with_cosine(scores[perm])
    r = T.ten_fold_verification(a, b, flipped[perm], folds[perm])
    expected = [1.0] * 10
    expected[3] = 0.0
    assert r["fold_accuracies"] == expected
    # and a different (wrong) fold assignment gives a different answer
    r2 = T.ten_fold_verification(a, b, flipped[perm], np.roll(folds[perm], 7))
    assert r2["fold_accuracies"] != expected


def _mirror_pairs(rng, n_same, n_diff, centre):
    """2-D pairs around ``centre``: same pairs point the same way, different pairs opposite ways;
    each pair comes with its mirror image so the features' mean is exactly ``centre``."""
    a, b, y = [], [], []
    for label, n in ((True, n_same), (False, n_diff)):
        for _ in range(n):
            ang = rng.uniform(0, 2 * np.pi)
            u = np.array([np.cos(ang), np.sin(ang)])
            v = u + rng.normal(0, 0.05, 2) if label else -u + rng.normal(0, 0.05, 2)
            for sgn in (1, -1):
                a.append(centre + sgn * u)
                b.append(centre + sgn * v)
                y.append(label)
    return np.array(a), np.array(b), np.array(y)


def test_mean_subtraction_uses_training_folds_only():
    rng = np.random.default_rng(0)
    centre = np.array([30.0, -20.0])  # far from the origin: without subtraction everything aligns
    parts = [_mirror_pairs(rng, 2, 2, centre) for _ in range(10)]  # 8 pairs per fold
    # fold 0 also holds two "same" pairs of one huge outlier image. Under the training-only mean
    # (= centre exactly) fold 0 is perfectly separable and the outliers score 1. A mean that also
    # counts fold 0's images is dragged ~25 units along x, every fold-0 feature then points the
    # same way, its different pairs score ~1 and fold 0 drops to 6/10.
    out = centre + np.array([1000.0, 0.0])
    a0, b0, y0 = parts[0]
    parts[0] = (np.vstack([a0, out, out]), np.vstack([b0, out, out]), np.r_[y0, True, True])
    a = np.vstack([p[0] for p in parts])
    b = np.vstack([p[1] for p in parts])
    same = np.concatenate([p[2] for p in parts])
    folds = np.concatenate([np.full(len(p[2]), k) for k, p in enumerate(parts)])

    r = T.ten_fold_verification(a, b, same, folds, subtract_mean=True)
    assert r["fold_accuracies"][0] == 1.0

    # what a leaky implementation (mean over all folds) would give on fold 0
    mu = np.vstack([a, b]).mean(0)
    leaky = T.cosine_scores(a - mu, b - mu)[folds == 0] >= r["fold_thresholds"][0]
    assert np.mean(leaky == same[folds == 0]) <= 0.6


def _reference_lfw_10_fold(fl, fr, flags, fold, thr_num):
    """Transcription of the MobileFaceNet / sphereface ``evaluation_10_fold`` script (flags +1/-1):
    training-fold mean subtraction, L2 norm, cosine, grid threshold = mean of all best thresholds,
    positives ``> t`` and negatives ``< t`` count as correct."""

    def acc(scores, fl_, t):
        return (np.sum(scores[fl_ == 1] > t) + np.sum(scores[fl_ == -1] < t)) / len(scores)

    accs = []
    for i in range(10):
        val, test = fold != i, fold == i
        mu = np.mean(np.concatenate((fl[val], fr[val]), 0), 0, keepdims=True)
        L, R = fl - mu, fr - mu
        L = L / np.linalg.norm(L, axis=1, keepdims=True)
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
        s = np.sum(L * R, 1)
        ths = np.arange(-thr_num, thr_num + 1) / thr_num
        a = np.array([acc(s[val], flags[val], t) for t in ths])
        best = np.mean(ths[a == a.max()])
        accs.append(acc(s[test], flags[test], best))
    return np.array(accs)


def test_matches_reference_lfw_script_on_random_features():
    rng = np.random.default_rng(7)
    n, d = 400, 16
    ident = rng.normal(size=(n, d))
    same = np.tile(np.r_[np.ones(20, bool), np.zeros(20, bool)], 10)
    fl = ident + 0.3 + rng.normal(scale=0.9, size=(n, d))
    fr = np.where(same[:, None], ident, rng.normal(size=(n, d))) + 0.3 + rng.normal(scale=0.9, size=(n, d))
    fold = np.repeat(np.arange(10), 40)
    ref = _reference_lfw_10_fold(fl, fr, np.where(same, 1, -1), fold, thr_num=1000)
    ours = T.ten_fold_verification(fl, fr, same, fold, subtract_mean=True)
    assert 0.6 < ref.mean() < 0.99  # a non-trivial problem
    # tie rules differ (mean of tied grid points vs the middle exact maximiser): allow one pair
    np.testing.assert_allclose(ours["fold_accuracies"], ref, atol=1 / 40 + 1e-9)
    assert ours["accuracy_mean"] == pytest.approx(ref.mean(), abs=0.01)


def test_ten_fold_rejects_bad_input():
    a, b = feats_with_cosine([0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        T.ten_fold_verification(a, b, [1, 0, 1], [0, 0, 0])  # one fold only
    with pytest.raises(ValueError):
        T.ten_fold_verification(a, b, [1, 0], [0, 1, 1])
    with pytest.raises(ValueError):
        T.ten_fold_verification(a, b, [1, 0, 1], [0, 1, 1], distance="manhattan")
    with pytest.raises(ValueError, match="0/1"):
        T.ten_fold_verification(a, b, [1, -1, 1], [0, 1, 1])  # reference-script +-1 flags


# -------------------------------------------------------------------------------- ROC, VAL, EER


def test_auc_and_roc_match_libraries():
    scores, same = noisy_scores()
    assert P.roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    roc = P.roc_curve(scores, same)
    fpr, tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc["fpr"], fpr)
    np.testing.assert_allclose(roc["tpr"], tpr)


@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.05, 0.3])
def test_val_at_far_matches_direct_count(far):
    scores, same = noisy_scores()
    v = P.val_at_far(scores, same, far)
    t = v["threshold"]
    n_neg, n_pos = (~same).sum(), same.sum()
    accepted_neg = np.sum(scores[~same] >= t)
    assert accepted_neg <= np.floor(far * n_neg + 1e-9)
    assert v["far"] == pytest.approx(accepted_neg / n_neg)
    assert v["val"] == pytest.approx(np.sum(scores[same] >= t) / n_pos)
    # the threshold is the most permissive one within budget: the next lower distinct score
    # would accept too many different pairs
    below = np.unique(scores)[np.unique(scores) < t]
    if below.size:
        assert np.sum(scores[~same] >= below[-1]) > np.floor(far * n_neg + 1e-9)


def test_val_at_far_by_hand_with_ties():
    # 10 different pairs, far=0.1 allows one false accept. The two top different scores tie at 0.8,
    # so the threshold must stay above 0.8: VAL counts the same pairs scoring >= 0.9 -> 2/4.
    same = np.array([1, 1, 1, 1] + [0] * 10, bool)
    scores = np.array([0.95, 0.9, 0.7, 0.5, 0.8, 0.8, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4])
    v = P.val_at_far(scores, same, 0.1)
    assert v == {"val": 0.5, "far": 0.0, "threshold": 0.9, "target_far": 0.1}
    # far=0.2 allows both tied ones; the lowest threshold still accepting only those two different
    # pairs is 0.5 (the next score down, 0.3, is a third different pair) -> VAL 4/4 at FAR 0.2
    v2 = P.val_at_far(scores, same, 0.2)
    assert (v2["val"], v2["threshold"]) == (1.0, 0.5) and v2["far"] == pytest.approx(0.2)


def test_eer_matches_brute_force_count_and_hand_example():
    # Definition shared with torchmetrics' BinaryEER (checked equal when this was written; not
    # imported here because torchmetrics alone takes ~15 s to import on the shared test box):
    # the operating point minimising |FAR - FRR|, EER = (FAR + FRR) / 2 there. Brute force over
    # "accept nothing" and every distinct score as a ">= t" threshold.
    scores, same = np.round(noisy_scores()[0], 2), noisy_scores()[1]  # rounded: ties included
    eer, thr = P.equal_error_rate(scores, same)
    cands = np.r_[np.inf, np.unique(scores)[::-1]]  # ROC order; first minimiser wins
    far_b = np.array([np.mean(scores[~same] >= t) for t in cands])
    frr_b = np.array([np.mean(scores[same] < t) for t in cands])
    gap = np.abs(far_b - frr_b)
    assert gap.min() == pytest.approx(np.abs(np.mean(scores[~same] >= thr) - np.mean(scores[same] < thr)))
    assert eer == pytest.approx(((far_b + frr_b) / 2)[np.argmin(gap)])
    far = np.mean(scores[~same] >= thr)
    frr = np.mean(scores[same] < thr)
    assert (far + frr) / 2 == pytest.approx(eer)
    # by hand: same 0.9 0.7 0.4, different 0.6 0.2 0.1. At t=0.7: FAR 0/3, FRR 1/3; at t=0.6:
    # FAR 1/3, FRR 1/3 -> |FAR-FRR| = 0, EER = 1/3 at threshold 0.6.
    e, t = P.equal_error_rate([0.9, 0.7, 0.4, 0.6, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert e == pytest.approx(1 / 3) and t == pytest.approx(0.6)


# ------------------------------------------------------------------------ fixed-threshold metrics


def test_metrics_at_threshold_match_sklearn():
    scores, same = noisy_scores()
    m = P.metrics_at_threshold(scores, same, 0.35)
    pred = scores >= 0.35
    assert m["f1"] == pytest.approx(f1_score(same, pred))
    assert m["accuracy"] == pytest.approx(np.mean(pred == same))
    assert m["precision"] == pytest.approx(np.sum(pred & same) / np.sum(pred))
    assert m["recall"] == pytest.approx(np.sum(pred & same) / np.sum(same))
    # by hand: threshold 0.6 on [0.9 s, 0.6 d, 0.5 s, 0.1 d] -> TP 1, FP 1, FN 1, TN 1
    h = P.metrics_at_threshold([0.9, 0.6, 0.5, 0.1], [1, 0, 1, 0])
    assert h == {"accuracy": 0.5, "f1": 0.5, "precision": 0.5, "recall": 0.5, "threshold": 0.6}
    # nothing predicted same -> precision/F1 0, not NaN
    assert P.metrics_at_threshold([0.1, 0.2], [1, 0], 0.9)["f1"] == 0.0


def test_f1_curve_and_best_f1_match_sklearn():
    scores, same = noisy_scores(n=200)
    grid = np.linspace(-0.5, 1.0, 31)
    t, f1s = P.f1_curve(scores, same, grid)
    expected = [f1_score(same, scores >= g, zero_division=0) for g in grid]
    np.testing.assert_allclose(f1s, expected, atol=1e-12)
    best_t, best = P.best_f1_threshold(scores, same)
    brute = max(f1_score(same, scores >= c, zero_division=0) for c in P.candidate_thresholds(scores))
    assert best == pytest.approx(brute)
    assert f1_score(same, scores >= best_t) == pytest.approx(best)


# ---------------------------------------------------------------------------------------- report


def test_report_keys_values_and_json():
    scores, same = noisy_scores()
    folds = np.repeat(np.arange(10), 60)
    a, b = feats_with_cosine(scores)
    r = T.verification_report(a, b, same, folds)
    required = {
        "accuracy_mean", "accuracy_std", "fold_accuracies", "val_at_far_1e-3", "val_at_far_1e-2",
        "auc", "eer", "eer_threshold", "accuracy_at_threshold", "f1_at_threshold", "threshold",
        "best_f1_threshold", "best_f1", "n_pairs",
    }
    assert required <= r.keys()
    json.dumps(r, allow_nan=False)  # plain Python numbers, no NaN / inf
    assert r["n_pairs"] == 600 and r["threshold"] == 0.6
    assert r["auc"] == pytest.approx(roc_auc_score(same, scores))
    assert r["f1_at_threshold"] == pytest.approx(f1_score(same, scores >= 0.6))
    assert r["val_at_far_1e-2"] == P.val_at_far(scores, same, 1e-2)["val"]
    assert 0.5 < r["accuracy_mean"] < 1.0 and len(r["fold_accuracies"]) == 10
    assert r["best_f1"] >= r["f1_at_threshold"]


def test_report_ranks_on_protocol_scores_and_thresholds_raw_cosine():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 8)) + 2.0
    b = a + rng.normal(scale=2.0, size=(200, 8))
    same = rng.random(200) < 0.5
    folds = np.repeat(np.arange(10), 20)
    r, ranked = T.verification_report(a, b, same, folds, subtract_mean=True, return_scores=True)
    # by hand: fold k's pairs scored with the mean feature of the other nine folds' pairs removed
    expected = np.empty(200)
    for k in range(10):
        te = folds == k
        mu = np.concatenate([a[~te], b[~te]]).mean(0)
        na = (a[te] - mu) / np.linalg.norm(a[te] - mu, axis=1, keepdims=True)
        nb = (b[te] - mu) / np.linalg.norm(b[te] - mu, axis=1, keepdims=True)
        expected[te] = (na * nb).sum(1)
    np.testing.assert_allclose(ranked, expected, atol=1e-12)
    raw = T.cosine_scores(a, b)
    assert not np.allclose(ranked, raw)  # the mean (2.0 per dimension) matters here
    assert r["auc"] == pytest.approx(roc_auc_score(same, expected))
    assert r["val_at_far_1e-2"] == P.val_at_far(expected, same, 1e-2)["val"]
    assert r["accuracy_at_threshold"] == pytest.approx(np.mean((raw >= 0.6) == same))
    assert r["global_scores"] == "cosine" and r["ranking_scores"] == "protocol"


def test_far_key():
    assert P.far_key(1e-3) == "1e-3" and P.far_key(1e-2) == "1e-2" and P.far_key(0.0015) == "1.5e-3"


def test_decisions_are_what_the_fold_accuracies_count():
    """Verification.decisions: each pair's protocol score against its own fold's threshold (folds numbered
    out of order and not from 0), so the share of right decisions per fold is that fold's accuracy."""
    from facematch.eval.verification import Verification

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    same = rng.random(200) < 0.5
    b[same] = a[same] + rng.normal(scale=1.2, size=(same.sum(), 8))
    folds = np.repeat([7, 3, 5, 9], 50)
    report, ranked = T.verification_report(a, b, same, folds, subtract_mean=True, return_scores=True)
    res = Verification(report, [], np.zeros((0, 8)), same, folds, T.cosine_scores(a, b), ranked)
    got = res.decisions()
    assert got.dtype == bool and got.shape == (200,)
    per_fold = [float(np.mean(got[folds == k] == same[folds == k])) for k in (3, 5, 7, 9)]
    assert per_fold == report["fold_accuracies"] and 0.5 < min(per_fold) < 1.0
    assert not np.array_equal(got, ranked >= report["threshold_mean"])  # the fold's own threshold, not the mean
