"""A probe-side model for the practitioner commands (compare, gallery search, the web page): ``--probe-ckpt``.

A camera's small, blurred face (the probe) is embedded by a model adapted to small faces, the enrolment or ID
photo (the gallery side) by the full-resolution model the options ``--arch/--weights/--ckpt`` name: the
teacher the probe model was distilled from (``experiment=adapt16_distill_last5_originals``: the student
learns to put a degraded face where the teacher puts the sharp one, so the two sides' embeddings are
comparable; docs/results.md has the cross-quality rows). In ``facematch-compare`` the second photo is the
probe; in ``facematch-gallery search`` and the web page's search, the photo searched.

A calibrated threshold belongs to one model on both sides; no calibration covers a pair of models, so a probe
model needs ``--threshold``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facematch.errors import FacematchError, WeightsError


def add_probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe-ckpt", default=None, metavar="CKPT",
                   help="a facematch-train checkpoint adapted to small faces (e.g. the 16 px distilled student) "
                        "that embeds the probe photo; the model options embed the gallery side (its teacher). "
                        "Needs --threshold")


def probe_embedder(args: argparse.Namespace, gallery_embedder):
    """The :class:`~facematch.embedding.photos.FaceEmbedder` of ``--probe-ckpt`` (with the gallery side's
    settings), or None without it. Checked before any detection: the file, ``--threshold``, and that its
    embeddings have the gallery model's size."""
    path = getattr(args, "probe_ckpt", None)
    if not path:
        return None
    if not Path(path).expanduser().is_file():
        raise WeightsError(f"probe checkpoint not found: {path} (--probe-ckpt PATH to a facematch-train .ckpt file)")
    if getattr(args, "threshold", None) is None:
        raise FacematchError("--probe-ckpt embeds the two sides with two models, which no calibration covers; "
                             "pass --threshold T (docs/results.md, cross-quality rows, lists the folds' thresholds)")
    from facematch.app.model_args import face_embedder
    from facematch.models.loading import load_checkpoint_model

    model = load_checkpoint_model(str(Path(path).expanduser()))
    fe = face_embedder(args, model)  # the gallery side's flip, device, precision, runtime and MTCNN settings
    d_probe, d_gallery = model.spec.embedding_dim, gallery_embedder.model.spec.embedding_dim
    if model.spec.template != gallery_embedder.spec.template:  # one detection and alignment serves both sides
        raise FacematchError(f"--probe-ckpt {path} aligns faces to {model.spec.template}, the gallery model to "
                             f"{gallery_embedder.spec.template}: pass the probe model's teacher as the gallery model")
    if d_probe != d_gallery:
        raise FacematchError(f"--probe-ckpt {path} gives {d_probe}-d embeddings, the gallery model {d_gallery}-d: "
                             "pass the probe model's teacher as the gallery model")
    return fe


def cross_similarity(gallery_embedder, probe_embedder, photos) -> float:
    """Cosine similarity of the first face of ``photos[0]`` (embedded by the gallery model) and of
    ``photos[1]`` (by the probe model); both embedders give unit-norm rows."""
    (a,) = gallery_embedder.embed([photos[0]])
    (b,) = probe_embedder.embed([photos[1]])
    return float(a[0].astype("float64") @ b[0].astype("float64"))
