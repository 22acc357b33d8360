"""Face detection with facenet-pytorch's MTCNN (weights ship inside the package; CPU by default).

:class:`FaceDetector` runs MTCNN on one image or a batch and returns, per image, every face found: boxes
``(N, 4)`` as ``x1, y1, x2, y2`` pixels, five landmarks ``(N, 5, 2)`` as ``(x, y)`` in the order left eye,
right eye, nose tip, left mouth corner, right mouth corner, and detection probabilities ``(N,)``.

Face selection rule (:func:`select_face`), when an image holds several faces:

- ``"nearest_center"`` (default, as in ``conf/align/mtcnn.yaml``): the face whose box centre is nearest the
  image centre (Euclidean distance); ties go to the larger box. Face datasets (LFW, VGGFace2) centre their
  subject but may show other, larger faces near the border.
- ``"largest"``: the face with the largest box area *inside the image* (MTCNN boxes may extend past the
  border; a half-visible face cut by the frame is measured by its visible part, so it does not beat a
  whole face in the middle); ties go to the higher probability.

Landmark convention: coordinates are in pixels with pixel centres at integers (``cv2`` / NumPy
indexing), the convention of the reference ArcFace crops. facenet-pytorch's MTCNN, whose box and
landmark arithmetic follows the 1-based MATLAB original, reports landmarks about half a pixel right of
and below that; :data:`LANDMARK_OFFSET` (-0.5 px, the ``landmark_offset`` setting) corrects it, as
measured by registering our crops onto ``lfw-aligned-112`` (``scripts/register_alignment.py``; figures in
docs/evaluation.md). Boxes are left as facenet-pytorch reports them, so the ``facenet_160`` crop stays
identical to facenet-pytorch's own.

Building MTCNN loads three small networks; :func:`get_detector` keeps one detector per process and
per setting, so code that aligns many images never builds it twice.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from facematch.errors import FacematchError

#: Valid names for the face selection rule.
SELECTION_RULES = ("largest", "nearest_center")
#: Added to facenet-pytorch's landmark coordinates to put them on integer pixel centres (see above).
LANDMARK_OFFSET = -0.5


@dataclass(frozen=True)
class DetectorSettings:
    """MTCNN settings; every field is recorded in a cache manifest so a cache is reproducible. The defaults
    are those of the one alignment config, ``conf/align/mtcnn.yaml`` (a test keeps them equal)."""

    min_face_size: int = 20  # smallest face (pixels) the image pyramid searches for
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-net score thresholds
    factor: float = 0.709  # scale step of the image pyramid
    select: str = "nearest_center"  # face selection rule, see the module docstring
    landmark_offset: float = LANDMARK_OFFSET  # pixels added to MTCNN's landmark x and y (0: facenet-pytorch's own)
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if self.select not in SELECTION_RULES:
            raise FacematchError(
                f"unknown face selection rule '{self.select}'; choose one of: {', '.join(SELECTION_RULES)}"
            )
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise FacematchError(
                f"MTCNN thresholds must be three numbers in [0, 1], got {list(self.thresholds)}"
            )
        if self.min_face_size < 12:
            raise FacematchError(f"min_face_size must be at least 12 pixels, got {self.min_face_size}")
        if not 0.0 < self.factor < 1.0:
            raise FacematchError(f"pyramid factor must be in (0, 1), got {self.factor}")
        try:
            offset = float(self.landmark_offset)
        except (TypeError, ValueError):
            offset = float("nan")
        if not -2.0 <= offset <= 2.0:
            raise FacematchError(
                f"landmark_offset must be a number of pixels in [-2, 2] (default {LANDMARK_OFFSET}), "
                f"got {self.landmark_offset!r}"
            )
        object.__setattr__(self, "landmark_offset", offset)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["thresholds"] = list(self.thresholds)
        d["detector"] = "facenet-pytorch MTCNN"
        return d


@dataclass
class Detection:
    """Every face MTCNN found in one image (possibly none)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the image searched

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def select_face(det: Detection, rule: str = "nearest_center") -> int | None:
    """Index of the face that ``rule`` picks (see the module docstring), or ``None`` when there is none."""
    if len(det) == 0:
        return None
    boxes = det.boxes.astype(np.float64)
    w, h = det.image_size
    if w > 0 and h > 0:  # the visible part of each box
        boxes = np.clip(boxes, 0, [w, h, w, h])
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    if rule == "largest":
        # lexsort: last key is primary. Largest area first, then highest probability.
        order = np.lexsort((-det.probs.astype(np.float64), -area))
    elif rule == "nearest_center":
        cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
        dist = np.hypot(cx - w / 2.0, cy - h / 2.0)
        order = np.lexsort((-area, dist))
    else:
        raise FacematchError(
            f"unknown face selection rule '{rule}'; choose one of: {', '.join(SELECTION_RULES)}"
        )
    return int(order[0])


def strided_max_pool(kernel: int, stride: int, ceil_mode: bool):
    """A module equal to ``MaxPool2d(kernel, stride, padding=0, ceil_mode=...)`` bit for bit, computed as
    ``kernel`` strided ``maximum``s per axis.

    Written by hand because PyTorch's eager CPU ``max_pool2d`` is slow on MTCNN's maps (docs/speed.md); it
    serves the eager nets (the fallback, and facenet-pytorch's own ``MTCNN.detect``)."""
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    def out_len(n: int) -> int:
        if not ceil_mode:
            return (n - kernel) // stride + 1
        out = math.ceil((n - kernel) / stride) + 1
        return out - 1 if (out - 1) * stride >= n else out  # the last window starts inside the input

    class StridedMaxPool(nn.Module):
        def forward(self, x):
            h, w = x.shape[-2:]
            oh, ow = out_len(h), out_len(w)
            ph, pw = max(0, (oh - 1) * stride + kernel - h), max(0, (ow - 1) * stride + kernel - w)
            if ph or pw:  # windows that hang over the edge see only the input (ceil mode)
                x = F.pad(x, (0, pw, 0, ph), value=float("-inf"))
            span_h, span_w = (oh - 1) * stride + 1, (ow - 1) * stride + 1
            rows = x[..., 0:span_h:stride, :]
            for k in range(1, kernel):
                rows = torch.maximum(rows, x[..., k : k + span_h : stride, :])
            out = rows[..., 0:span_w:stride]
            for k in range(1, kernel):
                out = torch.maximum(out, rows[..., k : k + span_w : stride])
            return out

    return StridedMaxPool()


def _fast_pools(net) -> None:
    """Swap every padding-free ``MaxPool2d`` of an MTCNN stage for :func:`strided_max_pool`."""
    from torch import nn

    for name, m in list(net.named_children()):
        if isinstance(m, nn.MaxPool2d) and m.padding == 0 and m.dilation == 1 and isinstance(m.kernel_size, int) \
                and isinstance(m.stride, int) and not m.return_indices:
            setattr(net, name, strided_max_pool(m.kernel_size, m.stride, m.ceil_mode))


def _frozen_stages(mtcnn) -> tuple | None:
    """P-, R- and O-Net traced and frozen for a CPU (oneDNN convolutions and max-pooling): the same outputs
    bit for bit as the eager nets, at any input size (tested). None when TorchScript is unavailable."""
    import warnings

    import torch

    examples = ((mtcnn.pnet, (1, 3, 64, 64)), (mtcnn.rnet, (2, 3, 24, 24)), (mtcnn.onet, (2, 3, 48, 48)))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            return tuple(torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net.eval(), torch.zeros(shape))))
                         for net, shape in examples)
    except Exception:  # pragma: no cover - a torch build without TorchScript: the eager nets serve
        return None


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array or a PIL image, got {arr.shape} {arr.dtype}")
    return Image.fromarray(arr)


class FaceDetector:
    """MTCNN on CPU (or ``settings.device``), batched; one instance per process via :func:`get_detector`."""

    def __init__(self, settings: DetectorSettings | None = None, **kwargs) -> None:
        from facenet_pytorch import MTCNN  # heavy import, deferred

        self.settings = settings if settings is not None else DetectorSettings(**kwargs)
        s = self.settings
        # keep_all / select_largest only affect MTCNN.forward's cropping, which is not used here:
        # detect() returns every face and select_face applies our own documented rule.
        self.mtcnn = MTCNN(
            min_face_size=s.min_face_size,
            thresholds=list(s.thresholds),
            factor=s.factor,
            select_largest=False,
            keep_all=True,
            device=s.device,
        ).eval()
        self.stages = _frozen_stages(self.mtcnn) if s.device == "cpu" else None
        for stage in (self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet):
            _fast_pools(stage)  # the eager nets: the fallback, and facenet-pytorch's own MTCNN.detect
        if self.stages is None:
            self.stages = (self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet)

    def detect(self, images: Sequence) -> list[Detection]:
        """Detect faces in each image (PIL or HxWx3 uint8). Images of equal size run as one MTCNN batch."""
        pils = [_as_pil(im) for im in images]
        out: list[Detection | None] = [None] * len(pils)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(pils):
            by_size.setdefault(im.size, []).append(i)
        for size, idx in by_size.items():
            if min(size) < self.settings.min_face_size:
                # MTCNN's pyramid is empty below min_face_size (and would crash): nothing can be found.
                for i in idx:
                    out[i] = Detection(image_size=size)
                continue
            from facematch.faces.mtcnn import detect_batch  # imports facenet-pytorch: deferred

            m = self.mtcnn
            found = detect_batch(np.stack([np.asarray(pils[i], np.uint8) for i in idx]), *self.stages,
                                 m.min_face_size, m.thresholds, m.factor, self.settings.device)
            for i, (boxes, points) in zip(idx, found):
                out[i] = Detection(
                    boxes=np.asarray(boxes[:, :4], np.float32).reshape(-1, 4),
                    landmarks=np.asarray(points, np.float32).reshape(-1, 5, 2) + np.float32(self.settings.landmark_offset),
                    probs=np.asarray(boxes[:, 4], np.float32).reshape(-1),
                    image_size=size,
                )
        return out  # type: ignore[return-value]

    def detect_one(self, image) -> Detection:
        return self.detect([image])[0]


@functools.lru_cache(maxsize=4)
def get_detector(settings: DetectorSettings = DetectorSettings()) -> FaceDetector:
    """The process-wide detector for ``settings`` (built on first call, then reused)."""
    return FaceDetector(settings)
