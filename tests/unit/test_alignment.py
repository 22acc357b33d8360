"""Alignment without photos: the centre-crop fallback (no face, other shapes, an image smaller than the
smallest face) and bad settings. On real LFW photos: tests/integration/test_alignment.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facematch.errors import FacematchError
from facematch.faces.align import FaceAligner, align_landmarks, fallback_landmarks


def test_no_face_falls_back_to_the_centre_crop():
    grey = Image.new("RGB", (250, 250), (128, 128, 128))
    res = FaceAligner("arcface_112x112").align(grey)
    assert res.status == "fallback" and res.n_faces == 0 and res.prob is None
    np.testing.assert_array_equal(res.image, align_landmarks(grey, fallback_landmarks(250, 250), "arcface_112x112"))
    box = FaceAligner("facenet_160").align(grey)
    assert box.status == "fallback" and box.image.shape == (160, 160, 3)


def test_fallback_for_other_shapes_uses_the_central_square():
    pts = fallback_landmarks(400, 200)
    np.testing.assert_allclose(pts, fallback_landmarks(200, 200) + [100.0, 0.0])


def test_image_smaller_than_min_face_size_falls_back():
    res = FaceAligner("arcface_112x112").align(np.zeros((8, 8, 3), np.uint8))
    assert res.status == "fallback" and res.image.shape == (112, 112, 3)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(FacematchError, match="unknown alignment template"):
        FaceAligner("arcface_999")
    with pytest.raises(FacematchError, match="selection rule"):
        FaceAligner("arcface_112x112", select="random")
    with pytest.raises(FacematchError, match="thresholds"):
        FaceAligner("arcface_112x112", thresholds=(0.6, 0.7))
