"""The side-by-side comparison picture (facematch.embedding.figures) on synthetic photos and crops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facematch.embedding import figures
from facematch.embedding.photos import Face, PhotoFaces


def photo(w: int, h: int, box, name: str = "a.jpg", seed: int = 0) -> PhotoFaces:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 80, (h, w, 3), dtype=np.uint8))  # dark: no pixel is the box colour
    crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    return PhotoFaces(name, image, [Face(np.array(box, np.float32), np.zeros((5, 2), np.float32), 0.99, crop)], 1)


def test_compare_image_layout_and_colours():
    photos = [photo(250, 250, (50, 60, 150, 190)), photo(500, 250, (300, 20, 400, 200), "b.png", 1)]
    same = figures.compare_image(photos, 0.71, True, "threshold 0.37 (--threshold)")
    diff = figures.compare_image(photos, 0.12, False, "threshold 0.37 (--threshold)")
    assert same.size == diff.size and same.mode == "RGB"
    assert same.width == 3 * figures.PAD + figures.PHOTO_HEIGHT + 2 * figures.PHOTO_HEIGHT  # photos scaled to 320 high
    px_same, px_diff = (np.asarray(im).reshape(-1, 3) for im in (same, diff))
    assert (px_same == figures.SAME_COLOUR).all(axis=1).any() and not (px_same == figures.DIFFERENT_COLOUR).all(axis=1).any()
    assert (px_diff == figures.DIFFERENT_COLOUR).all(axis=1).any()
    assert (px_same == figures.BOX_COLOUR).all(axis=1).sum() > 100  # both face boxes drawn


def test_crop_is_shown_pixel_for_pixel():
    p = photo(250, 250, (50, 60, 150, 190))
    big = np.asarray(figures.crop_image(p.faces[0].crop))
    assert big.shape == (figures.CROP_SIDE, figures.CROP_SIDE, 3)
    assert (big[0, 0] == p.faces[0].crop[0, 0]).all()


def test_draw_boxes_scales_the_box():
    image = Image.new("RGB", (100, 200), (0, 0, 0))
    out = figures.draw_boxes(image, [(10, 20, 50, 100)], height=400, labels=["1: Jane"])
    assert out.size == (200, 400)
    arr = np.asarray(out)
    assert (arr[40 + 60, 20] == figures.BOX_COLOUR).all()  # left edge at x = 10 * 2, inside the box's rows
    assert not (arr[300, 150] == figures.BOX_COLOUR).all()


def test_png_bytes_and_atomic_file(tmp_path):
    photos = [photo(250, 250, (50, 60, 150, 190)), photo(250, 300, (40, 40, 200, 250), "x" * 300 + ".jpg", 2)]
    data = figures.compare_png(photos, 0.5, True, "threshold 0.4120 (calibrated, far_1e-3 on pairs.txt: " + "x" * 200 + ")")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    out = figures.compare_figure(photos, 0.5, True, "t", tmp_path / "sub" / "fig.png")
    assert out == tmp_path / "sub" / "fig.png" and [p.name for p in out.parent.iterdir()] == ["fig.png"]
    with Image.open(io.BytesIO(data)) as a, Image.open(out) as b:
        assert a.size == b.size


def test_two_photos_only():
    with pytest.raises(ValueError, match="two photos"):
        figures.compare_image([photo(250, 250, (0, 0, 10, 10))], 0.5, True, "t")
    assert figures.verdict(True) == "same person" and figures.verdict(False) == "different people"


def test_a_panorama_is_drawn_smaller_not_wider():
    photos = [photo(4000, 500, (100, 100, 300, 350)), photo(250, 250, (50, 60, 150, 190), "b.jpg", 1)]
    im = figures.compare_image(photos, 0.5, True, "t")
    assert im.width == 3 * figures.PAD + figures.MAX_PHOTO_WIDTH + figures.PHOTO_HEIGHT
