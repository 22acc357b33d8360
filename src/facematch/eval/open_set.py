"""Open-set identification metrics as pure functions: numpy in, dict out.

Open set: some probes are of people in the gallery (*known*, "mated" searches), the others of people who
are not (*impostors*, "non-mated" searches), and a search answers "unknown" when its best gallery
similarity is below a threshold. The convention is that of NIST FRVT 1:N and IJB-C's open-set protocol:

- FAR (FRVT: FPIR, false-positive identification rate) at threshold ``t``: the fraction of impostor
  probes whose best gallery similarity is ``>= t`` (they would be reported as someone);
- DIR (detection and identification rate; 1 - FNIR) at ``t``: the fraction of known probes whose best
  match is the right identity *and* scores ``>= t``;
- DIR at a target FAR: ``t`` is set on the impostors' best scores alone, as the lowest threshold whose
  FAR is within the target (the rule of :func:`facematch.eval.metrics.val_at_far`, read conservatively:
  with ``n`` impostors at most ``floor(far * n)`` are accepted, ties never push it over); DIR is then read
  at that ``t``. DIR at FAR -> 1 is the closed-set Rank-1;
- Rank-1: the fraction of known probes whose best match is the right identity, no threshold.

Identities are scored by their best gallery face (``facematch.gallery.store.Gallery.search``), so each
probe contributes its top-1 similarity and whether that top-1 identity is its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.eval.metrics import far_key


def _scores(x, what: str) -> np.ndarray:
    s = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{what} holds non-finite scores")
    return s


def threshold_at_far(impostor_top, far: float) -> float:
    """The lowest threshold ``t`` with ``mean(impostor_top >= t) <= far``: just above the
    ``floor(far * n) + 1``-th highest impostor score (``-inf`` when every impostor may be accepted)."""
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    s = np.sort(_scores(impostor_top, "impostor_top"))[::-1]
    if s.size == 0:
        raise ValueError("no impostor probes: FAR is undefined")
    allowed = int(np.floor(far * s.size + 1e-9))
    if allowed >= s.size:
        return float("-inf")
    return float(np.nextafter(s[allowed], np.inf))


def rates_at_threshold(known_top, known_correct, impostor_top, threshold: float) -> dict:
    """``{"threshold", "dir", "far"}`` of the rule "report the top match iff its similarity >= threshold"."""
    k, i = _scores(known_top, "known_top"), _scores(impostor_top, "impostor_top")
    ok = np.asarray(known_correct, dtype=bool).reshape(-1)
    if ok.size != k.size:
        raise ValueError(f"{k.size} known scores but {ok.size} correctness flags")
    return {"threshold": float(threshold),
            "dir": float(np.mean(ok & (k >= threshold))) if k.size else 0.0,
            "far": float(np.mean(i >= threshold)) if i.size else 0.0}


def open_set_report(known_top, known_correct, impostor_top, fars: Sequence[float] = (1e-2, 1e-3),
                    threshold: float | None = None) -> dict:
    """Rank-1 and DIR at each target FAR (module docstring) from each known probe's top-1 similarity and
    whether that top-1 is its own identity, and each impostor probe's top-1 similarity::

        {"rank_1", "dir_at_far": {"1e-2": {"target_far", "threshold", "dir", "far"}, ...},
         "at_threshold": {...} (only with ``threshold``: the rates at a given operating point),
         "n_known", "n_impostors"}
    """
    k, i = _scores(known_top, "known_top"), _scores(impostor_top, "impostor_top")
    ok = np.asarray(known_correct, dtype=bool).reshape(-1)
    if k.size == 0:
        raise ValueError("no known probes")
    out: dict = {"rank_1": float(ok.mean()), "dir_at_far": {}}
    for far in fars:
        t = threshold_at_far(i, far)
        out["dir_at_far"][far_key(float(far))] = {"target_far": float(far),
                                                  **rates_at_threshold(k, ok, i, t)}
    if threshold is not None:
        out["at_threshold"] = rates_at_threshold(k, ok, i, threshold)
    out.update(n_known=int(k.size), n_impostors=int(i.size))
    return out
