"""A model's face-quality scorer, stored with the model like its calibration (:mod:`facematch.calibration.store`).

A quality document (``facematch-quality/1``, JSON) holds the learned head (:class:`~.head.QualityHead`:
its weights as numbers), the default threshold of its score and how it was chosen, what it was trained on,
the model's fingerprint and the settings the scores depend on. Where it lives (:func:`find_quality` looks in
this order; the first whose fingerprint is the model's wins):

1. for a weights file ``W``, a sidecar ``W.quality.json`` beside it;
2. ``$FACEMATCH_CACHE_DIR/qualities/<sha256>.json`` (where ``facematch-eval eval.quality=true`` writes it);
3. the ones shipped with facematch (``facematch/quality/shipped/<sha256>.json``), for the shipped weights.

Both scores come from the backbone's plain-view feature before normalisation: ``norm`` (its L2 norm) and
``learned`` (the head's predicted certainty ratio). A document of other weights is never used.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facematch.errors import FacematchError
from facematch.quality.head import QualityHead
from facematch.utils import stored
from facematch.utils.io import atomic_write_text

FORMAT = "facematch-quality/1"
SIDECAR_SUFFIX = ".quality.json"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
MAX_BYTES = 1 << 20
KEYS = {"format", "fingerprint", "score", "threshold", "rule", "head", "settings", "data", "created", "provenance"}


@dataclass
class QualityModel:
    fingerprint: str
    head: QualityHead
    threshold: float  # default: a face scoring below it is too poor to decide on
    rule: str = ""  # how the threshold was chosen
    score: str = "learned"
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    created: str | None = None
    origin: str = ""

    def scores(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """``{"learned", "norm"}`` of (N, D) plain-view features before normalisation."""
        f = np.asarray(features, np.float32)
        return {"learned": self.head.score(f), "norm": np.linalg.norm(f, axis=1)}

    def as_dict(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "score": self.score,
                "threshold": self.threshold, "rule": self.rule, "head": self.head.as_dict(),
                "settings": self.settings, "data": self.data, "created": self.created}

    @classmethod
    def from_dict(cls, d: Any, origin: str = "") -> "QualityModel":
        where = origin or "quality file"
        fix = "re-run facematch-eval eval.quality=true"
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise FacematchError(f"{where}: not a {FORMAT} document; {fix}")
        unknown = sorted(set(d) - KEYS)
        t = d.get("threshold")
        if unknown or not isinstance(t, (int, float)) or not math.isfinite(t) or not isinstance(d.get("head"), Mapping):
            raise FacematchError(f"{where}: malformed quality document ({unknown[:1] or 'threshold/head'}); {fix}")
        try:
            head = QualityHead.from_dict(dict(d["head"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise FacematchError(f"{where}: its quality head cannot be read ({err}); {fix}") from None
        return cls(str(d["fingerprint"]), head, float(t), str(d.get("rule", "")), str(d.get("score", "learned")),
                   dict(d.get("settings") or {}), dict(d.get("data") or {}), d.get("created"), origin)


def read_quality(path: str | os.PathLike) -> QualityModel:
    from facematch.utils.untrusted import read_json

    p = Path(path).expanduser()
    doc = read_json(p, MAX_BYTES, "quality file", "re-run facematch-eval eval.quality=true", FacematchError)
    return QualityModel.from_dict(doc, str(p))


def quality_dir() -> Path:
    from facematch.paths import cache_dir

    return cache_dir() / "qualities"


def candidate_files(fingerprint: str, weights: str | None = None) -> list[Path]:
    return stored.candidate_files(fingerprint, weights, SIDECAR_SUFFIX, quality_dir(), SHIPPED_DIR)


def find_quality(model) -> tuple[QualityModel | None, list[str]]:
    """``(quality model or None, notes)`` for an :class:`~facematch.models.base.EvalModel`."""
    notes: list[str] = []
    files = candidate_files(model.fingerprint, model.description.get("weights"))
    return stored.first_for_weights(files, read_quality, model.fingerprint, "the quality head of other weights",
                                    notes), notes


def write_quality(q: QualityModel, out: str | os.PathLike | None = None, provenance: dict | None = None) -> Path:
    doc = q.as_dict()
    if provenance:
        doc["provenance"] = provenance
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    return atomic_write_text(Path(out).expanduser() if out else quality_dir() / f"{q.fingerprint}.json", text)
