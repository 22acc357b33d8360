"""Operating points of a model from labelled pairs: the thresholds ``facematch-compare`` and the gallery use.

Pure functions on raw cosine scores (no mean subtraction, no folds: a practitioner's two photos are
scored exactly so). For each target false-accept rate the threshold is the lowest one whose FAR on the
different pairs is within the budget (:func:`facematch.eval.metrics.val_at_far`, read conservatively:
the FAR reported is a countable operating point); ``best_accuracy`` is the accuracy-maximising threshold
over all pairs (:func:`facematch.eval.ten_fold.best_accuracy_threshold`). Each point records the FAR and
TAR (true-accept rate) it reaches on the calibration pairs and how many pairs stand behind it: with
3,000 different pairs FAR 1e-3 is three false accepts, so its threshold is known to about that grain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facematch.eval.metrics import _scores_labels, far_key, val_at_far
from facematch.eval.ten_fold import best_accuracy_threshold

BEST_ACCURACY = "best_accuracy"


def far_point_name(far: float) -> str:
    """``1e-3`` -> ``"far_1e-3"``: the name of the operating point at that false-accept rate."""
    return f"far_{far_key(float(far))}"


def rates_at(scores, same, threshold: float) -> dict:
    """FAR, TAR and accuracy of the rule ``score >= threshold``."""
    s, y = _scores_labels(scores, same)
    pred = s >= threshold
    return {"far": float(pred[~y].mean()) if (~y).any() else 0.0,
            "tar": float(pred[y].mean()) if y.any() else 0.0,
            "accuracy": float((pred == y).mean())}


def operating_points(scores, same, fars: Sequence[float] = (1e-3,)) -> dict[str, dict]:
    """``{name: {"rule", "threshold", "far", "tar", "accuracy", ...}}`` for each target FAR and the best
    accuracy (module docstring)."""
    s, y = _scores_labels(scores, same)
    points: dict[str, dict] = {}
    for far in fars:
        v = val_at_far(s, y, float(far))
        points[far_point_name(far)] = {"rule": "far", "target_far": float(far), "threshold": v["threshold"],
                                       **rates_at(s, y, v["threshold"])}
    t, _ = best_accuracy_threshold(s, y)
    points[BEST_ACCURACY] = {"rule": BEST_ACCURACY, "threshold": float(t), **rates_at(s, y, t)}
    for p in points.values():
        p.update(n_same=int(y.sum()), n_different=int((~y).sum()))
    return points


def open_set_point_name(far: float) -> str:
    """``1e-2`` -> ``"open_set_far_1e-2"``: the 1:N operating point at that false-accept rate."""
    return f"open_set_{far_point_name(far)}"


def open_set_split(labels: Sequence[str], paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gallery, known probes, impostor probes)`` index arrays: the first image (by path) of every identity
    with two or more images is its gallery face and its other images are probes; every image of an identity
    with one image is an impostor probe (LFW's open-set protocol; docs/tools.md)."""
    by_id: dict[str, list[int]] = {}
    for i in np.argsort(np.asarray(paths, dtype=object), kind="stable"):
        by_id.setdefault(labels[i], []).append(int(i))
    gallery = [ix[0] for ix in by_id.values() if len(ix) > 1]
    known = [j for ix in by_id.values() if len(ix) > 1 for j in ix[1:]]
    impostors = [ix[0] for ix in by_id.values() if len(ix) == 1]
    return np.array(gallery, int), np.array(known, int), np.array(impostors, int)


def open_set_points(emb: np.ndarray, labels: Sequence[str], paths: Sequence[str],
                    fars: Sequence[float] = (1e-3,)) -> dict[str, dict]:
    """1:N operating points (``open_set_far_<rate>``) from the calibration images themselves: the threshold
    a gallery search needs so that a stranger's best match passes it at the target rate, for a gallery of
    this size (``gallery_size``: a larger gallery needs a higher threshold). Rates as in
    :mod:`facematch.eval.open_set`: ``far`` (FPIR) over impostor probes, ``tar`` = DIR over known ones."""
    from facematch.eval.metrics import l2_normalize
    from facematch.eval.open_set import open_set_report

    labels = np.asarray(labels, dtype=object)
    g, k, imp = open_set_split(labels, paths)
    if len(g) < 2 or len(k) == 0 or len(imp) == 0:
        return {}
    x = l2_normalize(emb).astype(np.float32)
    sims = x @ x[g].T  # one gallery face per identity: its best face is that face
    top = sims.argmax(1)
    rep = open_set_report(sims[k, top[k]], labels[g][top[k]] == labels[k], sims[imp, top[imp]], fars=fars)
    return {open_set_point_name(far): {"rule": "open_set", "target_far": float(far), "threshold": p["threshold"],
                                       "far": p["far"], "tar": p["dir"], "gallery_size": int(len(g)),
                                       "n_known": rep["n_known"], "n_impostors": rep["n_impostors"],
                                       "rank_1": rep["rank_1"]}
            for far, p in zip(fars, rep["dir_at_far"].values())}


def portable_path(path) -> str:
    """``path`` as ``$FACEMATCH_DATA_DIR/...`` when it lies under the data folder (a calibration names its
    data the same way on every machine), else absolute."""
    from pathlib import Path

    from facematch.paths import data_dir

    p, root = Path(str(path)).expanduser().resolve(), data_dir().resolve()
    return f"$FACEMATCH_DATA_DIR/{p.relative_to(root).as_posix()}" if p.is_relative_to(root) else str(p)


def calibrate(model, cfg, fars: Sequence[float], default: str | None = None):
    """The :class:`~facematch.calibration.store.Calibration` of ``model`` (an ``EvalModel``) on the labelled
    pairs of a composed ``eval`` config: embedded by the one evaluation job (``data``'s crops, ``embed``'s
    engine, ``protocol.flip``), scored by raw cosine; one point per rate in ``fars`` plus the best-accuracy
    and open-set points; ``default`` names the default point (the first rate's when None)."""
    import datetime as _dt

    from facematch.calibration.store import Calibration
    from facematch.config import instantiate_node
    from facematch.data.pair_files import identity_of, read_pairs
    from facematch.errors import FacematchError
    from facematch.eval.inputs import engine_settings, eval_source
    from facematch.eval.verification import verify

    protocol = instantiate_node(cfg.protocol)
    source = eval_source(cfg, model.spec.template)
    pairs_file = str(cfg.data.pairs)
    pairs = read_pairs(pairs_file, n_folds=int(protocol.n_folds))
    res = verify(model, pairs, source, protocol, engine_settings(cfg), what=pairs_file)
    points = operating_points(res.cosine, res.same, fars)
    open_set = open_set_points(res.emb, [identity_of(p) for p in res.paths], res.paths, fars)
    points.update(open_set)
    default = default or far_point_name(fars[0])
    if default not in points:
        raise FacematchError(f"--default {default} is not one of: {', '.join(points)} (or add its --far)")
    precision = res.ran["precision"]  # as the scores were computed (the embedder's resolved engine)
    return Calibration(
        fingerprint=model.fingerprint, points=points, default=default,
        search_default=open_set_point_name(fars[0]) if open_set else None,
        settings={"arch": model.spec.name, "template": model.spec.template, "flip": str(cfg.protocol.flip),
                  "precision": precision, "score": "cosine", "model": model.description.get("kind")},
        data={"pairs": portable_path(pairs_file), "root": portable_path(cfg.data.root),
              "preprocess": source.key, "n_pairs": len(pairs), "n_images": len(res.paths),
              "ten_fold_accuracy": res.report["accuracy_mean"]},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
