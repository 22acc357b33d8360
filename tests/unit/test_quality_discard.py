"""Error-versus-discard curves (facematch.quality.discard) against a direct count on a small synthetic set."""

from __future__ import annotations

import numpy as np
import pytest

from facematch.quality.discard import FRACTIONS, area, fmr_threshold, fnmr_curve, pair_quality, random_curve


def direct_fnmr(scores, same, quality, threshold, fraction):
    """FNMR of what remains after dropping round(fraction * N) lowest-quality pairs, counted one by one."""
    n_drop = int(round(fraction * len(scores)))
    ranked = sorted(range(len(scores)), key=lambda i: (quality[i], i))
    kept = ranked[n_drop:]
    genuine = [i for i in kept if same[i]]
    misses = [i for i in genuine if scores[i] < threshold]
    return len(misses) / len(genuine) if genuine else 0.0


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(7)
    n = 400
    same = rng.random(n) < 0.5
    q1, q2 = rng.random(n), rng.random(n)
    quality = pair_quality(q1, q2)
    # genuine pairs score higher when their quality is higher; impostors around 0
    scores = np.where(same, 0.2 + 0.6 * quality + 0.15 * rng.standard_normal(n), 0.1 * rng.standard_normal(n))
    quality[::37] = quality[5]  # ties, broken by index
    return scores, same, quality


def test_curve_matches_a_direct_count(synthetic):
    scores, same, quality = synthetic
    t = fmr_threshold(scores, same, 0.01)
    curve = fnmr_curve(scores, same, quality, t)
    for f, value in zip(FRACTIONS, curve):
        assert value == pytest.approx(direct_fnmr(scores, same, quality, t, f), abs=1e-12)
    assert curve[0] > curve[40] > 0  # discarding low quality removes misses here


def test_threshold_is_set_on_the_full_set():
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.5, 0.4, 0.3, 0.2, 0.0, -0.1, -0.2, -0.3])
    same = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], bool)  # 9 impostors, the highest 0.7
    t = fmr_threshold(scores, same, 0.1)  # 0.9 of one impostor allowed: none may pass
    assert 0.7 < t <= 0.8 and np.mean(scores[~same] >= t) == 0
    t = fmr_threshold(scores, same, 1 / 9)  # one impostor may pass: 0.7 is accepted, 0.5 not
    assert 0.5 < t <= 0.7 and np.sum(scores[~same] >= t) == 1


def test_pair_quality_is_the_lower_face_and_area_is_trapezoid():
    assert pair_quality([0.2, 0.9], [0.5, 0.1]).tolist() == [0.2, 0.1]
    line = FRACTIONS.copy()  # FNMR(f) = f: area up to 0.2 is 0.02
    assert area(line, FRACTIONS, 0.2) == pytest.approx(0.02)
    assert area(np.full(len(FRACTIONS), 0.3), FRACTIONS, 0.2) == pytest.approx(0.06)


def test_random_discarding_keeps_the_error_rate(synthetic):
    scores, same, quality = synthetic
    t = fmr_threshold(scores, same, 0.01)
    r = random_curve(scores, same, t, repeats=200)
    assert np.all(np.abs(r[:41] - r[0]) < 0.03) and r[0] == pytest.approx(fnmr_curve(scores, same, quality, t)[0])


def test_default_threshold_is_where_genuine_comparisons_start_to_fail_mostly():
    from facematch.quality.experiment import default_threshold

    q = np.arange(1000) / 1000.0  # genuine comparisons only; below quality 0.3 they all fail, above none
    same = np.ones(1000, bool)
    sim = np.where(q < 0.3, 0.0, 1.0)
    d = default_threshold(sim, same, q, threshold=0.5, window=100)
    # the highest run of 100 that is half failures starts at 0.25 (0.25..0.349: 50 fail); its middle is 0.3
    assert d["threshold"] == pytest.approx(0.3) and d["local_fnmr"] == pytest.approx(0.5)
    assert d["fraction"] == pytest.approx(0.3)
