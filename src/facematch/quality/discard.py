"""Error-versus-discard curves (ISO/IEC 29794-1 style): FNMR at a fixed FMR as the lowest-quality
comparisons are discarded.

- The decision threshold is set once, on the full set before anything is discarded (the ISO way): the
  lowest similarity ``t`` whose impostor acceptance ``#(impostor >= t) / #impostors`` is at most the
  target FMR.
- A comparison's quality is the lower of its two faces' scores (:func:`pair_quality`).
- Discarding a fraction ``f`` drops the ``round(f * N)`` comparisons (genuine and impostor alike: the system
  does not know which is which) of lowest pair quality, ties broken by the comparison's index; FNMR is the
  share of the remaining genuine comparisons scored below ``t``.
- :func:`area` is the trapezoidal area under FNMR(f) over ``0 <= f <= f_max`` on the curve's grid.
"""

from __future__ import annotations

import numpy as np

#: The discard fractions every curve is evaluated at: 0 to 0.5 in steps of 0.005.
FRACTIONS = np.round(np.arange(0, 101) * 0.005, 6)


def pair_quality(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(q1, np.float64), np.asarray(q2, np.float64))


def fmr_threshold(scores: np.ndarray, same: np.ndarray, fmr: float) -> float:
    """The lowest impostor score ``t`` (or just above the highest) with FMR(t) <= ``fmr``."""
    imp = np.sort(np.asarray(scores, np.float64)[~np.asarray(same, bool)])[::-1]
    allowed = int(np.floor(fmr * len(imp) + 1e-9))  # impostors that may score >= t
    if allowed >= len(imp):
        return float(imp[-1])
    return float(np.nextafter(imp[allowed], np.inf))


def discard_order(quality: np.ndarray) -> np.ndarray:
    """Comparison indices, lowest quality first (ties: lower index first)."""
    return np.lexsort((np.arange(len(quality)), np.asarray(quality, np.float64)))


def fnmr_curve(scores: np.ndarray, same: np.ndarray, quality: np.ndarray, threshold: float,
               fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    """FNMR at ``threshold`` of what remains after discarding each fraction of the lowest-quality pairs."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    order = discard_order(quality)
    n = len(order)
    g = same[order].astype(np.int64)
    miss = (same & (scores < threshold))[order].astype(np.int64)
    # counts over the kept tail order[k:], for every k
    g_kept = np.concatenate([np.cumsum(g[::-1])[::-1], [0]])
    m_kept = np.concatenate([np.cumsum(miss[::-1])[::-1], [0]])
    k = np.minimum(np.round(np.asarray(fractions) * n).astype(np.int64), n)
    return np.where(g_kept[k] > 0, m_kept[k] / np.maximum(g_kept[k], 1), 0.0)


def random_curve(scores, same, threshold: float, fractions: np.ndarray = FRACTIONS, repeats: int = 100,
                 seed: int = 0) -> np.ndarray:
    """The mean curve of ``repeats`` seeded random discard orders."""
    rng = np.random.default_rng(seed)
    n = len(scores)
    return np.mean([fnmr_curve(scores, same, rng.random(n), threshold, fractions) for _ in range(repeats)], axis=0)


def area(curve: np.ndarray, fractions: np.ndarray = FRACTIONS, f_max: float = 0.2) -> float:
    keep = np.asarray(fractions) <= f_max + 1e-12
    x, y = np.asarray(fractions)[keep], np.asarray(curve, np.float64)[keep]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
