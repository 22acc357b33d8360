"""Face quality in the practitioner tools (``facematch-compare``, ``facematch-gallery search``, the web page).

Each face's quality comes from the model's stored quality document (:mod:`facematch.quality.store`): the
learned score (CR-FIQA-style head) and the feature norm. Below the quality threshold, the tools answer
:data:`CANNOT_DECIDE` with the score instead of a same/different (or identity) verdict. The threshold is
``--min-quality Q`` when given (``off``: never refuse), else the document's default (chosen from the
error-versus-discard curves: docs/quality.md). A model without a stored quality head reports no quality and
always decides; ``--min-quality Q`` for such a model is an error.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from facematch.errors import FacematchError
from facematch.quality.store import QualityModel, find_quality

CANNOT_DECIDE = "cannot decide: face quality too low"


def add_quality_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-quality", default=None, metavar="Q|off",
                   help="refuse to decide (\"cannot decide: face quality too low\") when a face's learned quality "
                        "score is below Q (default: the model's stored threshold; off: always decide)")


@dataclass
class QualityGate:
    model: QualityModel | None
    threshold: float | None  # None: never refuse
    text: str
    verdict: str = CANNOT_DECIDE  # the answer instead of a verdict (an identity, same/different) for a poor face

    def scores(self, embedder, crops, views: np.ndarray | None = None) -> list[dict]:
        """``[{"quality": learned, "norm": feature norm}, ...]`` of aligned uint8 crops (empty: no head), from
        their ``views`` (:meth:`FaceEmbedder.views <facematch.embedding.photos.FaceEmbedder.views>`, the pass
        that embedded them) when given."""
        if self.model is None or not len(crops):
            return [{} for _ in crops]
        views = embedder.views(crops) if views is None else views
        s = self.model.scores(views[:, 0])
        return [{"quality": round(float(q), 4), "norm": round(float(n), 4)} for q, n in zip(s["learned"], s["norm"])]

    def too_low(self, score: dict) -> bool:
        return self.threshold is not None and "quality" in score and score["quality"] < self.threshold


def quality_gate(args: argparse.Namespace, model) -> QualityGate:
    """The gate ``--min-quality`` and the model's stored quality document make."""
    qm, notes = find_quality(model)
    raw = getattr(args, "min_quality", None)
    if raw is not None and str(raw).lower() == "off":
        return QualityGate(qm, None, "quality threshold off (--min-quality off)")
    if raw is not None:
        try:
            t = float(raw)
        except ValueError:
            raise FacematchError(f"--min-quality {raw!r} is not a number; give a quality score such as 0.2, or off") from None
        if not math.isfinite(t):
            raise FacematchError(f"--min-quality {raw!r} is not a finite number; give a quality score such as 0.2, or off")
        if qm is None:
            why = f" ({notes[0]})" if notes else ""
            raise FacematchError(f"--min-quality: this model has no stored quality head{why}; make one with "
                                 "`facematch-eval ... eval.quality.enabled=true` or drop --min-quality")
        return QualityGate(qm, t, f"quality threshold {t:g} (--min-quality)")
    if qm is None:
        return QualityGate(None, None, "no quality head stored for this model: faces are not rated")
    return QualityGate(qm, qm.threshold, f"quality threshold {qm.threshold:.4f} (stored default, {qm.origin})")
