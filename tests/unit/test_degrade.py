"""Degradation as data on synthetic crops: each step does what it says, draws are deterministic per image
and draw, settings are checked, and a FaceSource names its degradation in its cache key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facematch.errors import FacematchError
from facematch.data.degrade import Degradation
from facematch.data.source import FaceSource


def _crop(seed: int = 0, hw=(112, 96)) -> np.ndarray:
    """A smooth face-sized test image with fine detail on top (so that shrinking loses something)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0: hw[0], 0: hw[1]]
    base = np.stack([(x * 2) % 256, (y * 2) % 256, (x + y) % 256], -1).astype(float)
    return np.clip(base + rng.normal(0, 25, (*hw, 3)), 0, 255).astype(np.uint8)


def test_resolution_is_a_shrink_and_scale_back():
    crop = _crop()
    d = Degradation.from_config({"resolution": 16})
    out = d(crop, "a/b.png")
    assert out.shape == crop.shape and out.dtype == np.uint8
    small = Image.fromarray(crop).resize((14, 16), Image.BILINEAR)  # 96 * 16 / 112 = 13.7 -> 14 wide
    np.testing.assert_array_equal(out, np.asarray(small.resize((96, 112), Image.BILINEAR)))
    # the detail is gone: far less high-frequency energy than the crop had
    assert np.abs(np.diff(out.astype(float), axis=1)).mean() < 0.3 * np.abs(np.diff(crop.astype(float), axis=1)).mean()


def test_blur_jpeg_grayscale_each_change_the_crop():
    crop = _crop()
    for cfg in ({"blur": 2.0}, {"jpeg": 10}, {"grayscale": 1.0}):
        out = Degradation.from_config(cfg)(crop, "a/b.png")
        assert out.shape == crop.shape and not np.array_equal(out, crop), cfg
    grey = Degradation.from_config({"grayscale": 1.0})(crop, "a/b.png")
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_draws_are_deterministic_per_image_and_draw():
    d = Degradation.from_config({"resolution": [12, 24], "jpeg": [20, 80], "grayscale": 0.5, "draws": 4, "seed": 3})
    crop = _crop()
    assert np.array_equal(d(crop, "x/1.png", 0), d(crop, "x/1.png", 0))
    draws = [d(crop, "x/1.png", k) for k in range(4)]
    assert len({a.tobytes() for a in draws}) > 1  # different draws, different degradations
    others = [d(crop, f"y/{i}.png", 0) for i in range(6)]
    assert len({a.tobytes() for a in others}) > 1  # and different images draw differently
    reseeded = Degradation.from_config({"resolution": [12, 24], "jpeg": [20, 80], "grayscale": 0.5, "draws": 4, "seed": 4})
    assert any(not np.array_equal(d(crop, f"y/{i}.png", 0), reseeded(crop, f"y/{i}.png", 0)) for i in range(6))


def test_no_setting_means_no_degradation():
    assert Degradation.from_config(None) is None
    assert Degradation.from_config({"resolution": None, "blur": None, "jpeg": None, "grayscale": 0.0, "draws": 1}) is None


@pytest.mark.parametrize("cfg,needle", [
    ({"resolutoin": 16}, "data.degrade.resolutoin is not a degradation option"),
    ({"resolution": 2}, "data.degrade.resolution=2 must lie in [4, 4096]"),
    ({"jpeg": [80, 20]}, "with low <= high"),
    ({"blur": "soft"}, "data.degrade.blur='soft' is not a number"),
    ({"grayscale": 2}, "data.degrade.grayscale=2.0 must be a probability"),
    ({"resolution": 16, "draws": 0}, "data.degrade.draws=0 must be at least 1"),
])
def test_bad_settings_are_one_line_errors(cfg, needle):
    with pytest.raises(FacematchError) as err:
        Degradation.from_config(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_source_serves_degraded_crops_and_keys_them(tmp_path):
    (tmp_path / "A").mkdir()
    Image.fromarray(_crop(1, (112, 112))).save(tmp_path / "A" / "A_0001.png")
    plain = FaceSource(tmp_path, "sphereface_112x96", mode="prealigned", src_template="arcface_112x112")
    d = Degradation.from_config({"resolution": 16, "draws": 2})
    deg = FaceSource(tmp_path, "sphereface_112x96", mode="prealigned", src_template="arcface_112x112", degrade=d)
    rel = "A/A_0001.png"
    np.testing.assert_array_equal(deg(rel), d(plain(rel), rel, 0))
    assert deg.key != plain.key and "res16" in deg.key and deg.key.endswith("draw0")
    second = deg.with_draw(1)
    assert second.key.endswith("draw1") and deg.draw == 0  # a copy: the original keeps draw 0
    assert deg.degrade_description["resolution"] == [16.0, 16.0] and plain.degrade_description is None
    assert plain.with_draw(None) is plain
