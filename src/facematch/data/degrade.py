"""Degradation as data: a face crop made to look like a low-quality photo (``data.degrade``).

One :class:`Degradation` is applied to every crop a :class:`~facematch.data.source.FaceSource` serves:
training, validation, test, per-fold scoring and ``facematch-eval`` read the same degraded crops, and the
settings are part of every cache key that holds outputs of degraded crops.

The steps, in the order a low-quality camera applies them:

1. ``blur``: Gaussian blur of sigma pixels (of the crop at the backbone's input size), e.g. defocus;
2. ``resolution``: the crop shrunk so its height is this many pixels (bilinear, antialiased; the width keeps
   the aspect), i.e. the face was this small in the photo;
3. ``jpeg``: JPEG compression at this quality, at the shrunk size (where a camera compresses);
4. back up to the input size (bilinear), as a detector's crop of a small face is;
5. ``grayscale``: with this probability, the crop in grey (three equal channels).

Each of ``blur``, ``resolution`` and ``jpeg`` is null (off), one value, or ``[low, high]``: a range drawn
from per image. Draws are deterministic: draw ``d`` of image ``rel`` always gives the same crop (seeded by
``seed``, ``d`` and ``rel``), so a cached output stays valid and a training crop of draw 0 is exactly the
crop evaluation scores. Training may use ``draws`` different draws per image (views of the activation
cache, or a random one per use when training on images).

Written with PIL (already the image library here) rather than torchvision's random transforms, whose
randomness comes from the global torch generator and cannot be tied to an image and a draw.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from facematch.errors import FacematchError

Range = tuple[float, float] | None

#: The keys of ``data.degrade``.
DEGRADE_KEYS = ("resolution", "blur", "jpeg", "grayscale", "draws", "seed", "side")
#: ``data.degrade.side``: which images of a scored pair are degraded. both: every image (the symmetric
#: protocol); second: the second image of each pair only, the first untouched (the cross-quality protocol,
#: :mod:`facematch.eval.cross_quality`). Not part of a crop's settings: a degraded crop is the same either way.
SIDES = ("both", "second")


def degrade_side(cfg: Mapping | None) -> str:
    """``data.degrade.side`` (``both`` when unset), checked."""
    side = str((cfg or {}).get("side") or "both")
    if side not in SIDES:
        raise FacematchError(f"data.degrade.side={side!r} is not a side (choose {' | '.join(SIDES)})")
    return side


def _range(name: str, value: Any, low: float, high: float) -> Range:
    """null -> None; a number -> (v, v); [a, b] -> (a, b); each within [low, high]."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lo, hi = (float(v) for v in value)
    else:
        raise FacematchError(f"data.degrade.{name}={value!r} is not a number or a [low, high] range")
    if not (low <= lo <= hi <= high):
        raise FacematchError(f"data.degrade.{name}={value!r} must lie in [{low:g}, {high:g}] with low <= high")
    return (lo, hi)


@dataclass(frozen=True)
class Degradation:
    resolution: Range = None  # height in pixels the crop is shrunk to (then scaled back up)
    blur: Range = None  # Gaussian sigma in pixels
    jpeg: Range = None  # JPEG quality 1..95
    grayscale: float = 0.0  # probability of a grey crop
    draws: int = 1  # different draws per image that training uses
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> "Degradation | None":
        """``data.degrade`` -> a Degradation, or None when it changes nothing (every step off)."""
        cfg = dict(cfg or {})
        degrade_side(cfg)  # checked here too; which side is the scoring's business, not the crop's
        cfg.pop("side", None)
        unknown = sorted(set(cfg) - set(DEGRADE_KEYS))
        if unknown:
            raise FacematchError(f"data.degrade.{unknown[0]} is not a degradation option (valid: {', '.join(DEGRADE_KEYS)})")
        gray = float(cfg.get("grayscale") or 0.0)
        if not 0.0 <= gray <= 1.0:
            raise FacematchError(f"data.degrade.grayscale={gray} must be a probability in [0, 1]")
        draws = int(cfg["draws"]) if cfg.get("draws") is not None else 1
        if draws < 1:
            raise FacematchError(f"data.degrade.draws={draws} must be at least 1")
        d = cls(resolution=_range("resolution", cfg.get("resolution"), 4, 4096),
                blur=_range("blur", cfg.get("blur"), 0.0, 50.0), jpeg=_range("jpeg", cfg.get("jpeg"), 1, 95),
                grayscale=gray, draws=draws, seed=int(cfg.get("seed") or 0))
        return d if d.active else None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.resolution, self.blur, self.jpeg)) or self.grayscale > 0

    def describe(self) -> dict:
        """The settings as plain values: what a cache key records."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def name(self) -> str:
        """A short readable tag, e.g. ``res16`` or ``res12-24-jpeg30-gray0.5``."""
        def part(tag, r):
            if r is None:
                return ""
            return f"{tag}{r[0]:g}" if r[0] == r[1] else f"{tag}{r[0]:g}-{r[1]:g}"

        parts = [part("blur", self.blur), part("res", self.resolution), part("jpeg", self.jpeg),
                 f"gray{self.grayscale:g}" if self.grayscale else ""]
        return "-".join(p for p in parts if p)

    def rng(self, rel: str, draw: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(draw), zlib.crc32(rel.encode("utf-8"))])

    def __call__(self, crop: np.ndarray, rel: str, draw: int = 0) -> np.ndarray:
        """The degraded copy of a uint8 HxWx3 crop: draw ``draw`` of image ``rel``."""
        rng = self.rng(rel, draw)

        def pick(r: Range) -> float | None:  # always consume a number: a step's draw never depends on another's
            u = rng.random()
            return None if r is None else r[0] + u * (r[1] - r[0])

        blur, res, quality, grey = pick(self.blur), pick(self.resolution), pick(self.jpeg), rng.random()
        img = Image.fromarray(np.ascontiguousarray(crop, np.uint8))
        w, h = img.size
        if blur:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        small = img
        if res is not None and round(res) < h:
            sh = max(1, int(round(res)))
            small = img.resize((max(1, int(round(w * sh / h))), sh), Image.BILINEAR)
        if quality is not None:
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=int(round(quality)))
            buf.seek(0)
            small = Image.open(buf).convert("RGB")
        if small.size != (w, h):
            small = small.resize((w, h), Image.BILINEAR)
        if grey < self.grayscale:
            small = small.convert("L").convert("RGB")
        return np.asarray(small, dtype=np.uint8)
