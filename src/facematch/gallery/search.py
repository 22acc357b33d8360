"""Who is in this photo? Each face of a photo searched against a :class:`~facematch.gallery.store.Gallery`.

The photo takes the one path of :class:`~facematch.embedding.photos.FaceEmbedder` (decode, MTCNN, 5-point
alignment, embedding), as the gallery's own faces did at enrolment; the gallery refuses a different model.
A face is the best-matching identity when that identity's best similarity is ``>= threshold`` (the
model's calibrated operating point, :func:`facematch.app.model_args.decision_threshold`), else
``"unknown"``; the ``top_k`` candidates are listed either way.
"""

from __future__ import annotations

import os

from facematch.embedding.photos import accepted

UNKNOWN = "unknown"


def identify(matches: list[dict], threshold: float) -> tuple[str, float | None]:
    """``(identity or "unknown", best similarity)`` of one face's ranked matches."""
    if not matches:
        return UNKNOWN, None
    best = matches[0]
    return (best["name"] if accepted(best["similarity"], threshold) else UNKNOWN), float(best["similarity"])


def search_photo(face_embedder, gallery, path: str | os.PathLike, *, top_k: int = 5, threshold: dict,
                 select: str | None = None, all_faces: bool = False, quality=None, probe_embedder=None) -> dict:
    """Search the face of ``path`` (every face with ``all_faces``; ``select`` as ``facematch-compare``)::

        {"photo": path, "threshold": t, "decision": threshold (the dict given),
         "faces": [{"box": [x0, y0, x1, y1], "identity": name | "unknown", "similarity": best,
                    "matches": [{"name", "similarity", "crop", "photo"}, ...]}, ...]}

    ``threshold`` is a :func:`~facematch.app.model_args.decision_threshold` dict (``{"threshold": t, ...}``).
    A photo with no face (or, without ``select`` / ``all_faces``, several of similar size) raises the
    :class:`~facematch.errors.FacematchError` of :meth:`FaceEmbedder.photo`."""
    gallery.check_model(face_embedder.model.fingerprint, face_embedder.settings)  # before any detection
    photo = (probe_embedder or face_embedder).photo(path, select=select, all_faces=all_faces)
    return search_faces(face_embedder, gallery, photo, top_k=top_k, threshold=threshold, quality=quality,
                        probe_embedder=probe_embedder)


def search_faces(face_embedder, gallery, photo, *, top_k: int = 5, threshold: dict, quality=None,
                 probe_embedder=None) -> dict:
    """:func:`search_photo` of faces already found (a :class:`~facematch.embedding.photos.PhotoFaces`, e.g.
    of an uploaded image): the same dict, ``"photo"`` being ``photo.path``. With ``quality`` (a
    :class:`~facematch.app.quality.QualityGate`) each face also has its ``quality`` and ``norm``, and a face
    below the gate's threshold is the gate's ``verdict`` ("cannot decide: face quality too low") instead of an
    identity.
    ``probe_embedder``: the photo's faces embedded by this model (``--probe-ckpt``,
    :mod:`facematch.app.probe_model`) against the gallery enrolled with ``face_embedder``'s."""
    gallery.check_model(face_embedder.model.fingerprint, face_embedder.settings)
    t = float(threshold["threshold"])
    crops = [f.crop for f in photo.faces]
    views = face_embedder.views(crops) if probe_embedder is None and crops else None  # embeddings and quality
    emb = (probe_embedder or face_embedder).embed_crops(crops, views)
    faces = []
    rated = quality.scores(face_embedder, crops, views) if quality is not None else [{}] * len(emb)
    for face, matches, q in zip(photo.faces, gallery.search(emb, top_k) if len(emb) else [], rated):
        identity, best = identify(matches, t)
        if quality is not None and quality.too_low(q):
            identity = quality.verdict
        faces.append({"box": face.as_dict()["box"], "identity": identity, "similarity": best,
                      "matches": matches, **q})
    return {"photo": str(photo.path), "threshold": t, "decision": dict(threshold), "n_detected": photo.n_detected,
            "faces": faces}
