"""The aligned-crop cache without reading a photo: it pickles without its detector, and refuses other settings
and unsafe paths. Crops of real photos: tests/integration/test_crop_cache.py."""

from __future__ import annotations

import pytest

from facematch.errors import FacematchError
from facematch.faces.crop_cache import AlignedCache
from tests.helpers import DATA

LFW = DATA / "lfw" / "lfw-deepfunneled"  # a path only: no test here reads it


def test_cache_is_picklable_without_its_detector(tmp_path):
    import pickle

    cache = AlignedCache(tmp_path / "c", "arcface_112x112", LFW)
    _ = cache.aligner
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._aligner is None and clone.settings == cache.settings


def test_cache_refuses_other_settings_and_unsafe_paths(tmp_path):
    AlignedCache(tmp_path / "c", "arcface_112x112", LFW).check()
    with pytest.raises(FacematchError, match="template=arcface_112x112"):
        AlignedCache(tmp_path / "c", "facenet_160", LFW).check()
    with pytest.raises(FacematchError, match=r"select=nearest_center \(not largest\).*keyed one") as err:
        AlignedCache(tmp_path / "c", "arcface_112x112", LFW, select="largest").check()
    assert "\n" not in str(err.value)
    with pytest.raises(FacematchError, match="holds crops of .*, not "):
        AlignedCache(tmp_path / "c", "arcface_112x112", tmp_path).check()
    with pytest.raises(FacematchError, match="without '..'"):
        AlignedCache(tmp_path / "c", "arcface_112x112", LFW).get("../etc/passwd")
