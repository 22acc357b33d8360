"""The one alignment config (conf/align/mtcnn.yaml) without data: its values are the detector's defaults,
and source_from_config builds each preprocessing mode from plain mappings. On real photos, with prepare,
training and facematch-eval: tests/integration/test_align_config.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from facematch.config import config_dir
from facematch.faces.detect import DetectorSettings
from facematch.data.source import source_from_config

TEMPLATE = "sphereface_112x96"  # MobileFaceNet's


def test_detector_defaults_are_the_align_config():
    conf = OmegaConf.load(Path(config_dir()) / "align" / "mtcnn.yaml")
    defaults = DetectorSettings()
    for field in dataclasses.fields(DetectorSettings):
        if field.name in conf:
            assert DetectorSettings(**{field.name: conf[field.name]}) == defaults, field.name
    assert conf.select == "nearest_center" and conf.margin is None
    assert {f.name for f in dataclasses.fields(DetectorSettings)} - set(conf) == {"device"}
    assert OmegaConf.to_container(conf)["cache_dir"] == "${paths.cache_dir}/aligned"


def test_source_from_config_modes_and_plain_mappings(tmp_path):
    align = {"select": "largest", "min_face_size": 40, "thresholds": [0.6, 0.7, 0.8], "factor": 0.709,
             "landmark_offset": -0.5, "margin": None, "cache_dir": str(tmp_path / "aligned")}
    centre = source_from_config(tmp_path, TEMPLATE, {"mode": "center", "center_crop": 0.6, "align": align})
    assert centre.key == f"center0.6-{TEMPLATE}" and centre.align_kwargs == {}
    raw = source_from_config(tmp_path, TEMPLATE, {"mode": "center", "center_crop": 0.6, "align": align}, align_raw=True)
    assert raw.key == f"align-{TEMPLATE}"
    assert raw.crop_cache.settings["detector"]["min_face_size"] == 40
    assert raw.crop_cache.settings["detector"]["thresholds"] == [0.6, 0.7, 0.8]
    assert raw.aligned_cache_root.parent == tmp_path / "aligned"
    pre = source_from_config(tmp_path, TEMPLATE, {"mode": "prealigned", "template": "arcface_112x112", "align": align},
                             align_raw=True)  # already aligned: read as it is
    assert pre.key == f"prealigned-arcface_112x112-{TEMPLATE}"
    assert source_from_config(tmp_path, TEMPLATE).key == f"center0.5-{TEMPLATE}"
