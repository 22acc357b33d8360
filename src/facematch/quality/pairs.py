"""The mixed-quality pair set: LFW View 2's pairs with one or both faces degraded, seeded and fixed.

Pair ``i`` draws from ``numpy.random.default_rng([seed, i])``: with probability 1/2 both faces are degraded,
otherwise one (the first or the second, 1/2 each); each degraded face is shrunk to a height drawn uniformly
from ``[low, high]`` pixels (rounded to whole pixels, as :class:`~facematch.data.degrade.Degradation` does)
and scaled back up, bilinear. An undegraded face keeps the crop's height (its *true resolution*, the oracle
score). The pairs keep their labels and View 2 folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facematch.data.degrade import Degradation


@dataclass(frozen=True)
class MixedSettings:
    low: float = 12.0
    high: float = 112.0
    seed: int = 33


def plan(n_pairs: int, settings: MixedSettings = MixedSettings()) -> np.ndarray:
    """``(n_pairs, 2)`` target heights in pixels; 0 marks an undegraded face."""
    out = np.zeros((n_pairs, 2))
    for i in range(n_pairs):
        rng = np.random.default_rng([settings.seed, i])
        both, side, r = rng.random() < 0.5, int(rng.integers(2)), rng.uniform(settings.low, settings.high, 2)
        for s in range(2):
            if both or s == side:
                out[i, s] = float(round(r[s]))
    return out


def pair_specs(pairs, heights: np.ndarray) -> list:
    """The crop specs (:mod:`.features`) of every pair's two faces, in order ``[a0, b0, a1, b1, ...]``."""
    specs = []
    for p, (ha, hb) in zip(pairs, heights):
        for rel, h in ((p.a, ha), (p.b, hb)):
            specs.append((rel, Degradation(resolution=(h, h)) if h > 0 else None, 0))
    return specs


def true_resolution(heights: np.ndarray, crop_height: int) -> np.ndarray:
    """The oracle quality: each face's height in pixels (the crop's own for an undegraded one)."""
    return np.where(heights > 0, np.minimum(heights, crop_height), crop_height).astype(np.float64)
