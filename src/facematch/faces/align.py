"""Alignment of a detected face onto a named template (see :mod:`facematch.faces.templates`).

Rules:

- Landmark templates (``arcface_112x112``, ``sphereface_112x96``): the 2-D similarity transform
  (rotation, uniform scale, translation; no reflection, no shear) that maps the five detected landmarks
  onto the template's five points with least squared error (Umeyama, 1991), then a bilinear warp with
  black outside the image. Pixel centres sit at integer coordinates, as in ``cv2.warpAffine``, which is
  the convention the reference ArcFace crops were made with.
- Box templates (``facenet_160``): the MTCNN box grown by ``margin`` pixels *of the output* and resized
  to the template size, exactly as facenet-pytorch's ``extract_face`` does (it is called directly).
- One face per image: the detector's selection rule picks it (the face ``nearest_center`` by default, or
  the ``largest``; see :mod:`facematch.faces.detect`). ``AlignResult.n_faces`` says how many there were.
- No face found: the **centre-crop fallback**. The image's central square is assumed to hold a face where
  the typical LFW deep-funneled face sits in its 250x250 frame (:data:`FALLBACK_LANDMARKS`, the median of
  this detector's landmarks over the LFW ``pairs.txt`` images); those landmarks (or that box) are aligned as if
  detected. For an LFW image this is the average face position; for any other image it is a face-sized
  centre crop. The result is marked ``status="fallback"`` so callers and cache manifests count it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facematch.faces.images import load_image, source_mode
from facematch.errors import FacematchError
from facematch.faces.detect import DetectorSettings, get_detector, select_face
from facematch.faces.templates import Template, get_template

#: Median MTCNN landmarks of LFW deep-funneled faces, as fractions of the image's central square
#: (x / side, y / side): measured over the 7,700 pairs.txt images where a face was found (then moved by
#: the detector's ``landmark_offset``, -0.5 px of 250).
FALLBACK_LANDMARKS = np.array(
    [
        [0.41704, 0.45188],
        [0.58636, 0.44800],
        [0.50288, 0.54860],
        [0.43108, 0.63408],
        [0.57940, 0.63108],
    ]
)
#: Median MTCNN box of the same faces (x1, y1, x2, y2) as fractions of the central square.
FALLBACK_BOX = np.array([0.31244, 0.25956, 0.68344, 0.75432])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` (N, 2) points onto ``dst`` (N, 2); a 2x3 matrix.

    Umeyama's closed form (IEEE PAMI 13(4), 1991), reflection excluded. Hand-written on purpose: it is
    ten lines of numpy, the same algorithm as scikit-image's ``SimilarityTransform.estimate``, and saves
    the project a dependency (scikit-image and its image-IO stack) for one function; the tests check it
    recovers a known rotation + scale + translation exactly.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("source points are all identical; no similarity transform exists")
    cov = xd.T @ xs / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def warp_affine(image, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` (PIL or HxWx3 uint8) by the 2x3 ``matrix`` (source -> crop pixels) to ``size`` (H, W).

    Bilinear, black outside the source, integer pixel centres (``cv2.warpAffine`` semantics).
    """
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    m = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)[:2]  # crop pixel -> source pixel
    a, t = inv[:, :2], inv[:, 2]
    # PIL samples at pixel centres x + 0.5; shift so integer coordinates are centres on both sides.
    c = t + 0.5 - a @ np.array([0.5, 0.5])
    h, w = size
    out = img.transform(
        (w, h),
        Image.Transform.AFFINE,
        (a[0, 0], a[0, 1], c[0], a[1, 0], a[1, 1], c[1]),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    return np.asarray(out, dtype=np.uint8)


def align_landmarks(image, landmarks: np.ndarray, template: Template | str) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` (5, 2) land on ``template``'s points (least squares)."""
    tpl = get_template(template) if isinstance(template, str) else template
    matrix = similarity_transform(np.asarray(landmarks).reshape(5, 2), tpl.landmarks)
    return warp_affine(image, matrix, tpl.size)


def crop_box(image, box: np.ndarray, template: Template | str, margin: int | None = None) -> np.ndarray:
    """facenet-pytorch crop: ``box`` plus ``margin`` output pixels, resized to the (square) template size."""
    from facenet_pytorch.models.utils.detect_face import extract_face

    tpl = get_template(template) if isinstance(template, str) else template
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    margin = tpl.box_margin if margin is None else margin
    face = extract_face(img, np.asarray(box, np.float64), image_size=tpl.width, margin=margin)
    # extract_face returns a float CHW tensor holding the uint8 values of a PIL bilinear resize.
    arr = face.permute(1, 2, 0).numpy()
    if tpl.height != tpl.width:
        arr = np.asarray(Image.fromarray(arr.round().astype(np.uint8)).resize((tpl.width, tpl.height)))
    return np.clip(arr.round(), 0, 255).astype(np.uint8)


def crop_face(image, box, landmarks, template: Template | str, margin: int | None = None) -> np.ndarray:
    """One detected face onto ``template``: the 5-point alignment for landmark templates, the box crop
    (plus ``margin``) for box templates."""
    tpl = get_template(template) if isinstance(template, str) else template
    if tpl.points is not None:
        return align_landmarks(image, landmarks, tpl)
    return crop_box(image, box, tpl, margin=margin)


def _central_square(width: int, height: int) -> tuple[float, float, float]:
    side = float(min(width, height))
    return (width - side) / 2.0, (height - side) / 2.0, side


def fallback_landmarks(width: int, height: int) -> np.ndarray:
    """Where the centre-crop fallback assumes the five landmarks are, for a ``width`` x ``height`` image."""
    x0, y0, side = _central_square(width, height)
    return FALLBACK_LANDMARKS * side + np.array([x0, y0])


def fallback_box(width: int, height: int) -> np.ndarray:
    """Where the centre-crop fallback assumes the face box is (x1, y1, x2, y2)."""
    x0, y0, side = _central_square(width, height)
    return FALLBACK_BOX * side + np.array([x0, y0, x0, y0])


@dataclass
class AlignResult:
    """One aligned crop and how it was obtained."""

    image: np.ndarray  # H x W x 3 uint8, the template's size
    status: str  # "ok" (a detected face) or "fallback" (no face found: centre crop)
    n_faces: int  # faces the detector found (0 for a fallback; >1 means the selection rule chose)
    template: str
    prob: float | None = None  # detection probability of the chosen face
    box: list[float] | None = None  # chosen (or assumed) box in source pixels
    landmarks: list[list[float]] | None = None  # chosen (or assumed) landmarks in source pixels
    source_size: tuple[int, int] = (0, 0)  # (width, height) of the source image
    source_mode: str | None = None  # PIL mode of the file before RGB conversion, when read from a path

    def record(self) -> dict:
        """Everything but the pixels, JSON-ready (stored beside each cached crop)."""
        return {
            "status": self.status,
            "n_faces": self.n_faces,
            "template": self.template,
            "prob": self.prob,
            "box": self.box,
            "landmarks": self.landmarks,
            "source_size": list(self.source_size),
            "source_mode": self.source_mode,
        }


class FaceAligner:
    """Detect, pick one face, align it onto ``template``; fall back to a centre crop when none is found.

    ``FaceAligner("arcface_112x112", select="largest", min_face_size=20)``. Detector keyword
    arguments are those of :class:`~facematch.faces.detect.DetectorSettings`. The MTCNN model is built
    once per process (lazily, on the first image) and shared by aligners with the same settings.
    ``margin`` overrides the template's ``box_margin`` for box templates (facenet-pytorch's default is 0;
    its LFW example uses 14).
    """

    def __init__(self, template: str = "arcface_112x112", *, margin: int | None = None, **detector_kwargs):
        self.template = get_template(template)
        unknown = sorted(set(detector_kwargs) - set(DetectorSettings.__dataclass_fields__))
        if unknown:
            valid = ", ".join(["margin", *DetectorSettings.__dataclass_fields__])
            raise FacematchError(f"unknown alignment option(s) {', '.join(unknown)}; valid options: {valid}")
        self.detector_settings = DetectorSettings(**detector_kwargs)
        self.margin = self.template.box_margin if margin is None else int(margin)

    @property
    def settings(self) -> dict:
        """Template and detector settings: what a cache records to stay consistent."""
        d = {"template": self.template.name, "detector": self.detector_settings.to_dict()}
        if self.template.points is None:
            d["margin"] = self.margin
        return d

    @property
    def detector(self):
        return get_detector(self.detector_settings)

    def locate(self, images) -> list[tuple[Image.Image, np.ndarray, np.ndarray, str, float | None, int]]:
        """Per image (PIL or HxWx3 uint8; equal-sized ones share one detector batch): ``(RGB image, box,
        landmarks, status, prob, n_faces)`` of the face the selection rule picks, at full precision, or the
        centre-crop fallback's assumed box and landmarks (status ``fallback``) when there is none."""
        pils = [
            im.convert("RGB") if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, np.uint8))
            for im in images
        ]
        out = []
        for img, det in zip(pils, self.detector.detect(pils)):
            w, h = img.size
            k = select_face(det, self.detector_settings.select)
            if k is None:
                out.append((img, fallback_box(w, h), fallback_landmarks(w, h), "fallback", None, len(det)))
            else:
                out.append((img, det.boxes[k].astype(np.float64), det.landmarks[k].astype(np.float64), "ok",
                            float(det.probs[k]), len(det)))
        return out

    def align_batch(self, images) -> list[AlignResult]:
        """Align several images (PIL or HxWx3 uint8); equal-sized images share one detector batch."""
        return [
            AlignResult(
                image=crop_face(img, box, marks, self.template, self.margin),
                status=status,
                n_faces=n_faces,
                template=self.template.name,
                prob=prob,
                box=[round(float(v), 2) for v in box],
                landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in marks],
                source_size=img.size,
            )
            for img, box, marks, status, prob, n_faces in self.locate(images)
        ]

    def align(self, image) -> AlignResult:
        """Align one image (PIL or HxWx3 uint8)."""
        return self.align_batch([image])[0]

    def align_path(self, path: str | os.PathLike) -> AlignResult:
        """Read ``path`` with :func:`~facematch.faces.images.load_image` and align it.

        Raises :class:`~facematch.errors.UnreadableImageError` / ``DataNotFoundError`` for bad files.
        """
        img = load_image(path)
        result = self.align(img)
        result.source_mode = source_mode(path)
        return result
