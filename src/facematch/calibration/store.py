"""A model's calibrated operating points, stored with the model: read and written here.

A calibration (``facematch-calibrate``) is a small JSON document: the thresholds of named operating
points (``far_1e-3``, ``best_accuracy``, see :mod:`facematch.calibration.compute`), which one is the
default, the FAR / TAR each reaches on the calibration pairs, the model's fingerprint and the settings the
scores depend on (backbone, template, flip test, precision).

Where it lives (:func:`find_calibration` looks in this order; the first whose fingerprint matches wins):

1. inside a ``facematch-train`` checkpoint, ``checkpoint["facematch"]["calibration"]``
   (:attr:`EvalModel.calibration`);
2. for a bare weights file ``W``, a sidecar ``W.calibration.json`` beside it (copy one there to ship it
   with the weights);
3. ``$FACEMATCH_CALIBRATION_DIR/<sha256>.json`` (default ``.cache/facematch/calibrations``), where
   ``facematch-calibrate`` writes a bare weights file's calibration (``--out`` names another file);
4. the calibrations shipped with facematch (``facematch/calibration/shipped/<sha256>.json``), for the weights
   docs/results.md measures.

A calibration whose fingerprint is not the model's (the weights changed) is never used.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from facematch.errors import FacematchError, WeightsError
from facematch.utils import stored
from facematch.utils.io import atomic_write_bytes, atomic_write_text, stamp_before_reading

FORMAT = "facematch-calibration/1"
SIDECAR_SUFFIX = ".calibration.json"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: Settings a calibration's scores depend on: a model run otherwise is not calibrated by it.
MATCHED_SETTINGS = ("arch", "flip")


@dataclass
class Calibration:
    """Named operating points of one model (``points[name]["threshold"]``), ``default`` naming one."""

    fingerprint: str
    points: dict[str, dict]
    default: str
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    created: str | None = None
    origin: str = ""  # where it was read from (not stored)
    search_default: str | None = None  # the 1:N point a gallery search uses (``open_set_far_*``)

    def __post_init__(self) -> None:
        for name in (self.default, self.search_default):
            if name is not None and name not in self.points:
                raise ValueError(f"operating point {name!r} is not among {sorted(self.points)}")

    def point(self, name: str | None = None) -> dict:
        name = name or self.default
        if name not in self.points:
            raise FacematchError(f"operating point {name!r} not in the calibration ({', '.join(self.points)})")
        return {"name": name, **self.points[name]}

    def threshold(self, name: str | None = None) -> float:
        return float(self.point(name)["threshold"])

    def describe(self, name: str | None = None) -> str:
        """``threshold 0.412 (calibrated, far_1e-3 on lfw/pairs.txt: FAR 0.0010, TAR 0.9787)``."""
        p = self.point(name)
        where = Path(str(self.data.get("pairs", "?"))).name
        if p.get("rule") == "open_set":
            return (f"threshold {p['threshold']:.4f} (calibrated 1:N, {p['name']} on the images of {where}, gallery "
                    f"of {p['gallery_size']} people: FAR {p['far']:.4f}, DIR {p['tar']:.4f})")
        return (f"threshold {p['threshold']:.4f} (calibrated, {p['name']} on {where}: FAR {p['far']:.4f}, "
                f"TAR {p['tar']:.4f})")

    def as_dict(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "default": self.default,
                "search_default": self.search_default, "points": self.points, "settings": self.settings,
                "data": self.data, "created": self.created}

    @classmethod
    def from_dict(cls, d: Any, origin: str = "") -> "Calibration":
        """A calibration document (a file's, or a checkpoint's) checked against :func:`schema_problem`."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise FacematchError(f"{origin or 'calibration'}: not a {FORMAT} document; re-run facematch-calibrate")
        problem = schema_problem(d)
        if problem:
            raise FacematchError(f"{origin or 'calibration'}: malformed calibration ({problem}); re-run facematch-calibrate")
        points = {k: dict(v) for k, v in d["points"].items()}
        for v in points.values():
            v["threshold"] = float(v["threshold"])
        return cls(d["fingerprint"], points, d["default"], dict(d.get("settings") or {}), dict(d.get("data") or {}),
                   d.get("created"), origin, d.get("search_default"))

    def mismatch(self, settings: Mapping[str, Any]) -> str | None:
        """Why this calibration does not apply to a model run with ``settings`` (None: it does)."""
        for k in MATCHED_SETTINGS:
            if k in self.settings and k in settings and self.settings[k] != settings[k]:
                return f"calibrated with {k}={self.settings[k]}, this run uses {k}={settings[k]}"
        return None


#: The keys a calibration document and each of its points may have (what facematch-calibrate writes).
DOC_KEYS = {"format": (str,), "fingerprint": (str,), "default": (str,), "search_default": (str, type(None)),
            "points": (dict,), "settings": (dict,), "data": (dict,), "created": (str, type(None)),
            "provenance": (dict,)}
POINT_NUMBERS = ("threshold", "far", "tar", "accuracy", "target_far", "rank_1", "n_same", "n_different",
                 "gallery_size", "n_impostors", "n_known")
RULES = ("far", "best_accuracy", "open_set")
MAX_POINTS = 64
MAX_BYTES = 1 << 20  # far above the few KB facematch-calibrate writes


def schema_problem(d: Mapping) -> str | None:
    """What in calibration document ``d`` is not what facematch-calibrate writes (``None``: nothing): only
    the keys of :data:`DOC_KEYS` with their types; up to :data:`MAX_POINTS` points holding a ``rule`` of
    :data:`RULES` and finite numbers (:data:`POINT_NUMBERS`, the threshold required); settings, data and
    provenance of plain values."""
    import math

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def plain(v) -> bool:
        return v is None or isinstance(v, (str, bool)) or number(v)

    for key in ("format", "fingerprint", "default", "points"):
        if key not in d:
            return f"no {key!r}"
    for key, value in d.items():
        if key not in DOC_KEYS or not isinstance(value, DOC_KEYS[key]):
            return f"key {str(key)[:40]!r} is unknown or not a {'/'.join(t.__name__ for t in DOC_KEYS.get(key, ()))}"
    if not d["points"] or len(d["points"]) > MAX_POINTS:
        return f"{len(d['points'])} operating points"
    for name, p in d["points"].items():
        if not isinstance(p, dict) or not number(p.get("threshold")) or p.get("rule", "far") not in RULES:
            return f"point {str(name)[:40]!r} has no numeric threshold or an unknown rule"
        if any(k != "rule" and (k not in POINT_NUMBERS or not number(v)) for k, v in p.items()):
            return f"point {str(name)[:40]!r} has a key that is not one of {', '.join(POINT_NUMBERS)} or not a number"
    for key in ("settings", "data", "provenance"):  # provenance (facematch-report --stamp): one level deeper
        if not all(isinstance(k, str) and (plain(v) or (key == "provenance" and isinstance(v, dict) and all(
                isinstance(k2, str) and plain(v2) for k2, v2 in v.items()))) for k, v in d.get(key, {}).items()):
            return f"{key} holds something other than plain values"
    return None


def read_calibration(path: str | os.PathLike) -> Calibration:
    from facematch.utils.untrusted import read_json

    p = Path(path).expanduser()
    fix = "re-run facematch-calibrate"
    return Calibration.from_dict(read_json(p, MAX_BYTES, "calibration file", fix, FacematchError), str(p))


def sidecar_path(weights: str | os.PathLike) -> Path:
    return stored.sidecar_path(str(weights), SIDECAR_SUFFIX)


def candidate_files(fingerprint: str, weights: str | None = None) -> list[Path]:
    """Where a calibration of ``fingerprint`` may be, in lookup order (module docstring, 2-4)."""
    from facematch.paths import calibration_dir

    return stored.candidate_files(fingerprint, weights, SIDECAR_SUFFIX, calibration_dir(), SHIPPED_DIR)


def find_calibration(model) -> tuple[Calibration | None, list[str]]:
    """``(calibration or None, notes)`` for an :class:`~facematch.models.base.EvalModel`: the first
    stored calibration whose fingerprint is the model's; ``notes`` say what was passed over and why."""
    notes: list[str] = []
    embedded = getattr(model, "calibration", None)
    if embedded:
        try:
            cal = Calibration.from_dict(embedded, model.description.get("ckpt_path") or "the model file")
            if cal.fingerprint == model.fingerprint:
                return cal, notes
            notes.append(f"{cal.origin}: its calibration is of other weights (ignored)")
        except FacematchError as err:
            notes.append(str(err))
    files = candidate_files(model.fingerprint, model.description.get("weights"))
    return stored.first_for_weights(files, read_calibration, model.fingerprint, "calibrated other weights",
                                    notes), notes


def write_into_checkpoint(path: str | os.PathLike, cal: Calibration) -> Path:
    """Store ``cal`` in a ``facematch-train`` checkpoint (``["facematch"]["calibration"]``), atomically."""
    import torch

    from facematch.models.weights import torch_load_weights

    p = Path(path).expanduser()
    before = stamp_before_reading(p)
    ckpt = torch_load_weights(p, "checkpoint", "pass --ckpt PATH to a .ckpt file written by facematch-train")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("facematch"), dict):
        raise WeightsError(f"{p} is not a facematch-train checkpoint; calibrate a bare weights file with --weights")
    ckpt["facematch"]["calibration"] = cal.as_dict()
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    if stamp_before_reading(p) != before:  # a training run saved it meanwhile: replacing it would lose that save
        raise FacematchError(f"{p} was rewritten while its calibration was being added (is a training run saving "
                             "it?); nothing was written: calibrate a copy, or again once nothing writes it")
    return atomic_write_bytes(p, buf.getvalue())


def write_sidecar(cal: Calibration, out: str | os.PathLike | None = None) -> Path:
    """Write ``cal`` as JSON: to ``out`` when given, else into the calibration folder as ``<sha256>.json``
    (keyed by the weights, so the weights' own folder, often read-only or shared, is never written)."""
    from facematch.paths import calibration_dir

    text = json.dumps(cal.as_dict(), indent=2, sort_keys=True) + "\n"
    return atomic_write_text(Path(out).expanduser() if out else calibration_dir() / f"{cal.fingerprint}.json", text)
