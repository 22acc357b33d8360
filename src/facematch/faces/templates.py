"""Named alignment templates: the one place that says where a face's landmarks go in a crop.

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth corner, as
(x, y) pixels of the crop. ``arcface_112x112`` and ``sphereface_112x96`` are the same geometry, the
second being the first with 8 columns cut from each side (x - 8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from facematch.errors import FacematchError


@dataclass(frozen=True)
class Template:
    name: str
    size: tuple[int, int]  # (height, width) of the aligned crop
    points: tuple[tuple[float, float], ...] | None  # 5 landmarks (x, y); None for box-based crops
    box_margin: int = 0  # for box-based templates: pixels added around the detector box (facenet-pytorch)

    @property
    def landmarks(self) -> np.ndarray:
        if self.points is None:
            raise ValueError(f"template {self.name} is box-based and has no landmarks")
        return np.asarray(self.points, dtype=np.float64)

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]


_ARCFACE = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)

TEMPLATES: dict[str, Template] = {
    "arcface_112x112": Template("arcface_112x112", (112, 112), _ARCFACE),
    "sphereface_112x96": Template(
        "sphereface_112x96", (112, 96), tuple((x - 8.0, y) for x, y in _ARCFACE)
    ),
    # facenet-pytorch's MTCNN default: box + margin, resized to image_size (160), margin in final pixels.
    "facenet_160": Template("facenet_160", (160, 160), None, box_margin=0),
}


def get_template(name: str) -> Template:
    """A named template; ``box_<H>x<W>`` is a box-based crop of H x W pixels (a loose face crop resized, as
    ImageNet-style backbones read VGGFace2's crops), for any size."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    box = re.fullmatch(r"box_(\d+)x(\d+)", name)
    if box and min(int(box[1]), int(box[2])) >= 32:
        return Template(name, (int(box[1]), int(box[2])), None)
    raise FacematchError(
        f"unknown alignment template '{name}'; choose one of: {', '.join(sorted(TEMPLATES))}, "
        "or box_<H>x<W> (a loose crop of at least 32 x 32)"
    )


def crop_between(image: np.ndarray, src: str, dst: str) -> np.ndarray | None:
    """Exact conversion between templates that differ only by a crop, else ``None``.

    ``arcface_112x112`` -> ``sphereface_112x96`` is columns 8..104 of the 112x112 crop.
    """
    if src == dst:
        return image
    if (src, dst) == ("arcface_112x112", "sphereface_112x96"):
        return image[:, 8:104]
    return None
