"""The side-by-side picture of a comparison: each photo with its face box, the two aligned crops the model
saw, the similarity, the decision and the threshold it was taken at.

One drawing (:func:`compare_image`, PIL only: no display, no font files, safe in a web server's threads)
serves ``facematch-compare --show PNG`` (:func:`compare_figure`, written atomically) and ``facematch-app``
(:func:`compare_png`, the same picture as PNG bytes). Photos are :class:`~facematch.embedding.photos.PhotoFaces`
(or anything with ``.path``, ``.image`` and ``.faces[i].box`` / ``.crop``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facematch.utils.io import atomic_write_bytes

#: Height each photo is drawn at, and the side of each aligned crop, in pixels.
PHOTO_HEIGHT = 320
#: A wide photo (a panorama) is drawn smaller rather than wider than this.
MAX_PHOTO_WIDTH = 2 * PHOTO_HEIGHT
CROP_SIDE = 160
PAD = 16
SAME_COLOUR = (22, 130, 60)
DIFFERENT_COLOUR = (190, 40, 40)
BOX_COLOUR = (255, 200, 0)
INK = (30, 30, 30)
MUTED = (90, 90, 90)


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system font needed), or its bitmap one on a build without FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def verdict(same: bool | None) -> str:
    """The words of a decision, shared by the CLI's picture and the app's page (None: a face too poor to decide on)."""
    if same is None:
        return "cannot decide: face quality too low"
    return "same person" if same else "different people"


def draw_boxes(image: Image.Image, boxes, height: int = PHOTO_HEIGHT, labels: Sequence[str] | None = None,
               max_width: int | None = None) -> Image.Image:
    """``image`` scaled to ``height`` (less if it would be wider than ``max_width``) with each box
    ``(x0, y0, x1, y1)`` (photo pixels) drawn, labelled when ``labels`` are given."""
    img = image.convert("RGB")
    scale = min(height / img.height, (max_width or 1 << 30) / img.width)
    out = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(out)
    width = max(2, height // 120)
    f = font(max(12, height // 20))
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (float(v) * scale for v in np.asarray(box, np.float64).ravel()[:4])
        draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=width)
        if labels is not None and i < len(labels):
            tx, ty = x0, max(0.0, y0 - getattr(f, "size", 11) - 6)
            l, t, r, b = draw.textbbox((tx, ty), labels[i], font=f)
            draw.rectangle((l - 3, t - 2, r + 3, b + 2), fill=BOX_COLOUR)
            draw.text((tx, ty), labels[i], fill=INK, font=f)
    return out


def photo_with_boxes(photo, height: int = PHOTO_HEIGHT, labels: Sequence[str] | None = None,
                     max_width: int | None = None) -> Image.Image:
    """:func:`draw_boxes` of a photo's used faces."""
    return draw_boxes(photo.image, [face.box for face in photo.faces], height, labels, max_width)


def crop_image(crop: np.ndarray, side: int = CROP_SIDE) -> Image.Image:
    """An aligned uint8 crop (H, W, 3) as a PIL image ``side`` pixels square (nearest: the model's pixels)."""
    return Image.fromarray(np.asarray(crop, np.uint8)).resize((side, side), Image.Resampling.NEAREST)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, f, width: int) -> str:
    """``text``, cut (with "...") to fit ``width`` pixels: the longest prefix that fits, by bisection."""
    if draw.textlength(text, font=f) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if draw.textlength(text[:mid] + "...", font=f) <= width else (lo, mid - 1)
    return text[:lo] + "..."


def compare_image(photos: Sequence, similarity: float, same: bool, threshold_text: str) -> Image.Image:
    """The picture (module docstring) of two photos' first faces."""
    if len(photos) != 2:
        raise ValueError(f"compare_image draws two photos, got {len(photos)}")
    panels = [photo_with_boxes(p, max_width=MAX_PHOTO_WIDTH) for p in photos]
    crops = [crop_image(p.faces[0].crop) for p in photos]
    names = [Path(str(p.path)).name for p in photos]
    col = [max(panel.width, CROP_SIDE, 200) for panel in panels]
    f_name, f_big, f_small = font(18), font(30), font(18)
    name_h, verdict_h, small_h = 28, 44, 26
    width = PAD * 3 + sum(col)
    height = PAD + name_h + PHOTO_HEIGHT + PAD + CROP_SIDE + PAD + verdict_h + small_h * 2 + PAD
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = PAD
    for name, panel, crop, w in zip(names, panels, crops, col):
        draw.text((x, PAD), _fit_text(draw, name, f_name, w), fill=MUTED, font=f_name)
        canvas.paste(panel, (x + (w - panel.width) // 2, PAD + name_h + (PHOTO_HEIGHT - panel.height) // 2))
        cy = PAD + name_h + PHOTO_HEIGHT + PAD
        cx = x + (w - CROP_SIDE) // 2
        canvas.paste(crop, (cx, cy))
        draw.rectangle((cx - 1, cy - 1, cx + CROP_SIDE, cy + CROP_SIDE), outline=(200, 200, 200))
        x += w + PAD
    y = PAD + name_h + PHOTO_HEIGHT + PAD + CROP_SIDE + PAD
    colour = MUTED if same is None else SAME_COLOUR if same else DIFFERENT_COLOUR
    draw.text((PAD, y), verdict(same).upper(), fill=colour, font=f_big)
    y += verdict_h
    line = f"similarity {similarity:.4f}" + ("" if same is None else f" {'>=' if same else '<'} threshold")
    draw.text((PAD, y), _fit_text(draw, line, f_small, width - 2 * PAD), fill=INK, font=f_small)
    draw.text((PAD, y + small_h), _fit_text(draw, threshold_text, f_small, width - 2 * PAD), fill=MUTED, font=f_small)
    return canvas


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """A PIL image or a uint8 array as PNG bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def compare_png(photos: Sequence, similarity: float, same: bool, threshold_text: str) -> bytes:
    """:func:`compare_image` as PNG bytes (what ``facematch-app`` shows inline)."""
    return png_bytes(compare_image(photos, similarity, same, threshold_text))


def compare_figure(photos: Sequence, similarity: float, same: bool, threshold_text: str,
                   out_png: str | os.PathLike) -> Path:
    """Write :func:`compare_image` to ``out_png`` atomically (``facematch-compare --show``); returns the path."""
    return atomic_write_bytes(out_png, compare_png(photos, similarity, same, threshold_text))
