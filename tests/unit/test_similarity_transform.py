"""The similarity transform (the least-squares fit, never a reflection), the templates, and warps, on
synthetic points and images."""

from __future__ import annotations

import math

import numpy as np

from facematch.faces.align import similarity_transform, warp_affine
from facematch.faces.templates import get_template


# --- the similarity transform ---------------------------------------------------------------------


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_transform_recovers_known_rotation_scale_translation():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 250, size=(5, 2))
    angle, scale, t = math.radians(17.0), 1.7, np.array([5.5, -3.25])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = scale * src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-10)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-8)
    np.testing.assert_allclose(apply(m, src), dst, atol=1e-8)


def test_similarity_transform_is_the_least_squares_fit_on_noisy_points():
    # x' = a x - b y + tx, y' = b x + a y + ty is linear in (a, b, tx, ty): solve it with lstsq.
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = get_template("arcface_112x112").landmarks + rng.normal(0, 3, size=(5, 2))
    rows = []
    for x, y in src:
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), dst.reshape(-1), rcond=None)[0]
    expected = np.array([[a, -b, tx], [b, a, ty]])
    np.testing.assert_allclose(similarity_transform(src, dst), expected, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = get_template("arcface_112x112").landmarks
    mirrored = src * np.array([-1.0, 1.0])
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_arcface_and_sphereface_templates_differ_by_8_pixels():
    arc, sph = get_template("arcface_112x112"), get_template("sphereface_112x96")
    np.testing.assert_allclose(arc.landmarks - sph.landmarks, [[8.0, 0.0]] * 5)
    assert (arc.size, sph.size) == ((112, 112), (112, 96))


# --- warping ----------------------------------------------------------------------------------------


def dot_image(x: int, y: int, size=(100, 120)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[y, x] = 255
    return img


def brightest(img: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])
    return int(x), int(y)


def test_warp_affine_translation_uses_integer_pixel_centres():
    m = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 7.0]])
    out = warp_affine(dot_image(30, 40), m, (100, 120))
    assert brightest(out) == (35, 47)
    assert out[47, 35, 0] == 255  # an integer shift moves pixels exactly, no blur


def test_warp_affine_rotation_and_scale_land_where_the_matrix_says():
    m = similarity_transform(np.array([[0, 0], [10, 0]]), np.array([[60, 20], [60, 40]]))  # 90 deg, x2
    out = warp_affine(dot_image(20, 10), m, (100, 120))
    assert brightest(out) == tuple(np.round(apply(m, np.array([[20.0, 10.0]]))[0]).astype(int))


def test_warp_outside_the_source_is_black():
    m = np.array([[1.0, 0.0, 500.0], [0.0, 1.0, 0.0]])
    assert warp_affine(np.full((50, 50, 3), 200, np.uint8), m, (50, 50)).max() == 0
