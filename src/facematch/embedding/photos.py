"""A photo -> its faces -> aligned crops -> L2-normalised embeddings: the one path of every practitioner tool.

``facematch-compare``, ``facematch-gallery`` (enroll and search) and ``facematch-app`` all go through
:class:`FaceEmbedder`: the photo is decoded (:func:`facematch.faces.images.load_image`: EXIF, any colour
mode, decompression-bomb guard), searched with MTCNN (:mod:`facematch.faces.detect`), each face is aligned
onto the model's template with its five landmarks (:func:`facematch.faces.align.crop_face`) and the crops
are embedded by the same :class:`~facematch.embedding.embedder.Embedder` as ``facematch-eval`` (flip test,
device, precision, runtime), then L2-normalised, so a dot product of two embeddings is their cosine.

Which faces (:meth:`FaceEmbedder.faces`):

- ``all_faces``: every detected face, largest first;
- otherwise one face: the one ``select`` names (``largest`` / ``nearest_center``), or, with ``select``
  ``None``, the largest, refusing a photo with another face of similar size (box area at least
  :data:`SIMILAR_SIZE` of the largest's: :class:`~facematch.errors.MultipleFacesError`); smaller faces
  (people in the background, common in press photos such as LFW) are ignored.
- no face: :class:`~facematch.errors.NoFaceError` (no centre-crop fallback for a practitioner's photo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from facematch.errors import FacematchError, MultipleFacesError, NoFaceError
from facematch.utils.hardware import DEFAULT_PRECISION

#: A second face at least this fraction of the largest face's box area makes a photo ambiguous.
SIMILAR_SIZE = 0.5
#: Photos decoded and detected together by :meth:`FaceEmbedder.photos`.
DETECT_BATCH = 16


@dataclass
class Face:
    """One detected face: its box ``(x0, y0, x1, y1)`` and five landmarks in photo pixels, MTCNN's
    probability, and the aligned uint8 crop the model sees."""

    box: np.ndarray
    landmarks: np.ndarray
    prob: float
    crop: np.ndarray

    def as_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "prob": round(float(self.prob), 4)}


@dataclass
class PhotoFaces:
    """The faces used from one photo (one, or all with ``all_faces``) and how many were detected."""

    path: str
    image: Any  # the decoded PIL RGB image
    faces: list[Face] = field(default_factory=list)
    n_detected: int = 0


def box_areas(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def pick_faces(det, path: str, select: str | None = None, all_faces: bool = False) -> list[int]:
    """Indices into ``det`` (a :class:`~facematch.faces.detect.Detection`) of the faces to use (module
    docstring)."""
    from facematch.faces.detect import select_face

    n = len(det)
    if n == 0:
        raise NoFaceError(f"no face found in {path}; use a photo in which a face is clearly visible")
    area = box_areas(det.boxes)
    if all_faces:
        return [int(i) for i in np.argsort(-area, kind="stable")]
    if select is None and n > 1:
        similar = int((area >= SIMILAR_SIZE * area.max()).sum())
        if similar > 1:
            raise MultipleFacesError(
                f"{similar} faces of similar size in {path}; crop it to one person, pass "
                "--select largest|nearest_center, or search every face (--all-faces)"
            )
    return [int(select_face(det, select or "largest"))]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class FaceEmbedder:
    """Photos -> faces -> unit-norm embeddings with one model (an
    :class:`~facematch.models.loading.EvalModel`), as ``facematch-eval`` embeds them (``flip``, ``device``,
    ``precision``, ``runtime``); ``min_face_size`` is MTCNN's smallest face in pixels."""

    def __init__(self, model, *, flip: str = "concat", device: str = "auto", precision: str = DEFAULT_PRECISION,
                 runtime: str = "auto", min_face_size: int = 20, batch_size: int = 64):
        from facematch.embedding.embedder import Embedder

        self.model = model
        self.spec = model.spec
        self.flip = flip
        self.min_face_size = int(min_face_size)
        self.embedder = Embedder(model.module, model.spec, flip=flip, device=device, precision=precision,
                                 runtime=runtime, batch_size=batch_size, progress=False)

    @property
    def settings(self) -> dict:
        """What the embeddings depend on besides the weights (recorded with calibrations and galleries)."""
        return {"arch": self.spec.name, "template": self.spec.template, "flip": self.flip,
                "precision": self.embedder.precision, "device": self.embedder.device_name}

    def detector(self):
        from facematch.faces.detect import DetectorSettings, get_detector

        return get_detector(DetectorSettings(min_face_size=self.min_face_size, select="largest"))

    def read(self, path: str | os.PathLike):
        from facematch.faces.images import load_image

        return load_image(path)

    def aligned(self, image, det, path: str, select: str | None = None, all_faces: bool = False) -> PhotoFaces:
        """The faces :func:`pick_faces` takes from ``det`` (the detection of ``image``), aligned to the
        model's template."""
        from facematch.faces.align import crop_face

        chosen = pick_faces(det, path, select, all_faces)
        faces = [Face(det.boxes[k].copy(), det.landmarks[k].copy(), float(det.probs[k]),
                      crop_face(image, det.boxes[k], det.landmarks[k], self.spec.template)) for k in chosen]
        return PhotoFaces(str(path), image, faces, len(det))

    def faces(self, image, path: str, select: str | None = None, all_faces: bool = False) -> PhotoFaces:
        """The faces of a decoded ``image`` (``path`` names it in errors), aligned to the model's template."""
        return self.aligned(image, self.detector().detect_one(image), str(path), select, all_faces)

    def photo(self, path: str | os.PathLike, select: str | None = None, all_faces: bool = False) -> PhotoFaces:
        """Decode ``path`` and find its faces (errors name the file)."""
        return self.faces(self.read(path), str(path), select, all_faces)

    def photos(self, paths: Sequence[str | os.PathLike], select: str | None = None, all_faces: bool = False,
               batch_size: int = DETECT_BATCH) -> Iterator[PhotoFaces | FacematchError]:
        """:meth:`photo` for many files, in order, one result per path: its :class:`PhotoFaces`, or the
        :class:`~facematch.errors.FacematchError` that photo raised (unreadable, no face, several faces),
        so a caller enrolling a folder can count and skip bad photos. Photos are detected ``batch_size``
        at a time (:meth:`FaceDetector.detect <facematch.faces.detect.FaceDetector.detect>` runs
        equal-size images as one MTCNN batch: ~2.6x faster on LFW than one by one)."""
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), max(1, int(batch_size))):
            chunk = paths[start: start + max(1, int(batch_size))]
            images: list[Any] = []
            for p in chunk:
                try:
                    images.append(self.read(p))
                except FacematchError as err:
                    images.append(err)
            decoded = [im for im in images if not isinstance(im, FacematchError)]
            found = iter(self.detector().detect(decoded)) if decoded else iter(())
            for p, im in zip(chunk, images):
                if isinstance(im, FacematchError):
                    yield im
                    continue
                try:
                    yield self.aligned(im, next(found), p, select, all_faces)
                except FacematchError as err:
                    yield err

    def views(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, V, D) per-view model outputs of (N, H, W, 3) uint8 crops: the one forward pass that both
        :meth:`embed_crops` and a quality score (:mod:`facematch.app.quality`) can read."""
        return self.embedder.views_of_arrays(np.asarray(crops, np.uint8))

    def embed_crops(self, crops: Sequence[np.ndarray] | np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, D) float32 unit-norm embeddings (from their ``views`` when given)."""
        crops = np.asarray(crops, np.uint8)
        if len(crops) == 0:
            return np.zeros((0, 0), np.float32)
        return normalize_rows(self.embedder.finish(self.views(crops) if views is None else views))

    def embed(self, photos: Sequence[PhotoFaces]) -> list[np.ndarray]:
        """One (n_faces, D) array per photo, all photos' crops embedded in one batch."""
        crops = [f.crop for p in photos for f in p.faces]
        emb = self.embed_crops(crops)
        out, i = [], 0
        for p in photos:
            out.append(emb[i: i + len(p.faces)])
            i += len(p.faces)
        return out


def accepted(similarity: float, threshold: float) -> bool:
    """The one decision rule of compare, the gallery and the app: a match iff ``similarity >= threshold``
    (the rule every threshold of :mod:`facematch.eval.metrics` is computed for)."""
    return bool(similarity >= threshold)


def pair_similarity(face_embedder: "FaceEmbedder", photos: Sequence[PhotoFaces], views: np.ndarray | None = None) -> float:
    """Cosine similarity of the first face of two photos, both embedded in one batch (from ``views``, their
    :meth:`FaceEmbedder.views`, when given)."""
    a, b = face_embedder.embed_crops([p.faces[0].crop for p in photos], views)
    return float(a.astype(np.float64) @ b.astype(np.float64))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (unit-norm or not)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
