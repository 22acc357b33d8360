"""The cross-quality protocol (facematch.eval.cross_quality) against a brute-force computation written with
plain Python loops: which image of each pair is degraded, each side's own mean from the training folds, the
threshold chosen on the other folds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facematch.data.degrade import Degradation, degrade_side
from facematch.data.pair_files import Pair
from facematch.errors import FacematchError
from facematch.eval.cross_quality import combine_fold_figures, cross_figures, cross_verification, one_sided_ten_fold
from facematch.eval.verification import Protocol, Verification


def _synthetic(n_people=12, n_pairs=60, n_folds=4, dim=6, seed=0):
    """Images NAME/NAME_000i with a clean and a degraded embedding each (the degraded one shifted by a common
    offset, as a small face is, plus noise); pairs over them, same or different person, in folds."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    offset = rng.normal(size=dim) * 2.0
    paths, clean, degraded = [], [], []
    for p in range(n_people):
        for i in range(1, 4):
            paths.append(f"p{p}/p{p}_{i:04d}.jpg")
            clean.append(centres[p] + 0.6 * rng.normal(size=dim))
            degraded.append(0.5 * centres[p] + offset + 0.9 * rng.normal(size=dim))
    pairs = []
    for k in range(n_pairs):
        a = int(rng.integers(len(paths)))
        if k % 2 == 0:  # same person, another image
            person = a // 3
            b = person * 3 + (a % 3 + 1 + int(rng.integers(2))) % 3
        else:
            b = int(rng.integers(len(paths)))
            while b // 3 == a // 3:
                b = int(rng.integers(len(paths)))
        pairs.append(Pair(paths[a], paths[b], a // 3 == b // 3, k % n_folds))
    return pairs, paths, np.array(clean), np.array(degraded)


def _brute_force(pairs, clean: dict, degraded: dict, subtract_mean: bool):
    """Fold accuracies, thresholds and scores, with loops: gallery = first image undegraded, probe = second
    image degraded; each side's mean over the pairs outside the fold; every split of the training scores
    tried, the middle of the best ones kept (the lower middle of an even number)."""
    folds = sorted({p.fold for p in pairs})
    accs, thrs, scores_out = [], [], [None] * len(pairs)
    dim = len(next(iter(clean.values())))
    for k in folds:
        train = [p for p in pairs if p.fold != k]
        mg, mp = [0.0] * dim, [0.0] * dim
        if subtract_mean:
            for p in train:
                for d in range(dim):
                    mg[d] += clean[p.a][d] / len(train)
                    mp[d] += degraded[p.b][d] / len(train)

        def score(p):
            g = [clean[p.a][d] - mg[d] for d in range(dim)]
            q = [degraded[p.b][d] - mp[d] for d in range(dim)]
            dot = sum(x * y for x, y in zip(g, q))
            return dot / math.sqrt(sum(x * x for x in g)) / math.sqrt(sum(y * y for y in q))

        s_train = [(score(p), p.same) for p in train]
        u = sorted({s for s, _ in s_train})
        cands = [u[0] - (u[1] - u[0]) / 2] + [(u[i] + u[i + 1]) / 2 for i in range(len(u) - 1)] + \
                [u[-1] + (u[-1] - u[-2]) / 2]
        acc_of = [sum((s >= t) == y for s, y in s_train) for t in cands]
        best = [t for t, a in zip(cands, acc_of) if a == max(acc_of)]
        thr = sorted(best)[(len(best) - 1) // 2]
        test = [(i, p) for i, p in enumerate(pairs) if p.fold == k]
        correct = 0
        for i, p in test:
            scores_out[i] = score(p)
            correct += (scores_out[i] >= thr) == p.same
        accs.append(correct / len(test))
        thrs.append(thr)
    return accs, thrs, scores_out


@pytest.mark.parametrize("subtract_mean", [True, False])
def test_one_sided_protocol_matches_brute_force(subtract_mean):
    pairs, paths, clean, degraded = _synthetic()
    protocol = Protocol(subtract_mean=subtract_mean)
    res = cross_verification(pairs, (clean, paths), (degraded, paths), protocol)
    accs, thrs, scores = _brute_force(pairs, dict(zip(paths, clean)), dict(zip(paths, degraded)), subtract_mean)
    assert res.report["fold_accuracies"] == pytest.approx(accs, abs=1e-12)
    assert res.report["fold_thresholds"] == pytest.approx(thrs, abs=1e-9)
    assert res.ranked == pytest.approx(np.array(scores), abs=1e-9)
    assert res.report["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert res.report["mean"] == ("per side" if subtract_mean else "none")


def test_the_second_image_is_the_degraded_one():
    """Swapping which embeddings are the clean ones changes the figures; the brute force with the first image
    degraded instead is a different computation, so the check above fixes the side."""
    pairs, paths, clean, degraded = _synthetic(seed=1)
    protocol = Protocol(subtract_mean=True)
    second = cross_verification(pairs, (clean, paths), (degraded, paths), protocol)
    swapped = [Pair(p.b, p.a, p.same, p.fold) for p in pairs]
    first = cross_verification(swapped, (clean, paths), (degraded, paths), protocol)
    assert not np.allclose(second.ranked, first.ranked)
    accs, _, _ = _brute_force(pairs, dict(zip(paths, clean)), dict(zip(paths, degraded)), True)
    assert second.report["fold_accuracies"] == pytest.approx(accs)


def test_per_side_means_differ_from_a_pooled_mean():
    """With a degraded side far from the clean one, one pooled mean (the symmetric protocol's) scores the
    pairs differently from each side's own mean."""
    pairs, paths, clean, degraded = _synthetic(seed=2)
    g = clean[[paths.index(p.a) for p in pairs]]
    q = degraded[[paths.index(p.b) for p in pairs]]
    same, folds = [p.same for p in pairs], [p.fold for p in pairs]
    per_side = one_sided_ten_fold(g, q, same, folds, subtract_mean=True)["protocol_scores"]
    from facematch.eval.ten_fold import ten_fold_verification

    pooled = ten_fold_verification(g, q, same, folds, subtract_mean=True)["protocol_scores"]
    assert not np.allclose(per_side, pooled)


def test_cross_figures_per_fold_and_teacher():
    pairs, paths, clean, degraded = _synthetic(seed=3)
    protocol = Protocol(subtract_mean=True)

    def ver(emb):
        v = cross_verification(pairs, (emb, paths), (emb, paths), protocol)  # any Verification over `paths`
        return Verification(v.report, paths, emb, v.same, v.folds, v.cosine, v.ranked)

    teacher_emb = clean * 1.5 + 0.1
    cross, figs = cross_figures(pairs, ver(degraded), ver(clean), protocol, fold=2, teacher=ver(teacher_emb))
    mixed = cross_verification(pairs, (teacher_emb, paths), (degraded, paths), protocol)
    assert figs["cross"]["fold_accuracy"] == cross.report["fold_accuracies"][2]
    assert figs["cross_teacher"]["fold_accuracy"] == mixed.report["fold_accuracies"][2]
    assert set(figs) == {"symmetric", "cross", "undegraded", "cross_teacher", "teacher_undegraded"}
    jobs = [{"cross": {"fold_accuracy": a}} for a in (0.9, 0.8)]
    assert combine_fold_figures(jobs) == {"cross_accuracy_mean": pytest.approx(0.85),
                                          "cross_accuracy_std": pytest.approx(0.05)}


def test_a_missing_probe_image_is_one_clear_error():
    pairs, paths, clean, degraded = _synthetic(seed=4)
    with pytest.raises(FacematchError, match="probe-side images were not embedded"):
        cross_verification(pairs, (clean, paths), (degraded[:-5], paths[:-5]), Protocol())


def test_side_knob():
    assert degrade_side(None) == "both"
    assert degrade_side({"side": "second", "resolution": 16}) == "second"
    with pytest.raises(FacematchError, match="data.degrade.side='first'"):
        degrade_side({"side": "first"})
    # the side is the scoring's: a crop (and every cache key) is the same either way
    assert Degradation.from_config({"resolution": 16, "side": "second"}) == Degradation.from_config({"resolution": 16})
