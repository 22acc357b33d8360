"""One alignment config (conf/align/mtcnn.yaml) for prepare, training and evaluation: the same detector
settings and the same aligned-crop folder everywhere, and one function that builds a FaceSource from config."""

from __future__ import annotations

import pytest

from facematch.cli.data import build_parser, prepare_folder, prepare_settings
from facematch.errors import FacematchError
from facematch.faces.align import FaceAligner
from facematch.faces.crop_cache import AlignedCache
from facematch.data.source import source_from_config
from facematch.train import build

TEMPLATE = "sphereface_112x96"  # MobileFaceNet's


def _sources(cfg_factory, lfw_root, tmp_path, *overrides: str):
    """The aligned-crop caches that prepare, training (data=lfw_photos_mtcnn) and facematch-eval (data=lfw_photos,
    raw photos, embed.align_raw) use for the same photos and template, with ``overrides``."""
    cache = tmp_path / "cache"
    common = ["arch=mobilefacenet", f"data.root={lfw_root}", f"paths.cache_dir={cache}", *overrides]
    train_cfg = cfg_factory("data=lfw_photos_mtcnn", *common, out="train")
    _, dm = build(train_cfg)
    eval_cfg = cfg_factory("data=lfw_photos", *common, config_name="eval", out="eval")
    ev = source_from_config(eval_cfg.data.root, TEMPLATE, eval_cfg.data.preprocess, align_raw=bool(eval_cfg.embed.align_raw))
    flags = [f"--{o.split('=')[0][len('align.'):].replace('_', '-')}={o.split('=')[1]}" for o in overrides]
    args = build_parser().parse_args(["prepare", str(lfw_root), "--template", TEMPLATE, "--cache-dir",
                                      str(cache / "aligned"), *flags])
    prep = AlignedCache(prepare_folder(args), TEMPLATE, lfw_root, **prepare_settings(args))
    return prep, dm.source.crop_cache, ev.crop_cache


def test_prepare_training_and_eval_use_the_same_settings_and_folder(cfg_factory, lfw_root, tmp_path):
    prep, train, ev = _sources(cfg_factory, lfw_root, tmp_path)
    assert prep.settings == train.settings == ev.settings == FaceAligner(TEMPLATE).settings
    assert prep.settings["detector"]["select"] == "nearest_center"
    assert prep.root == train.root == ev.root and prep.root.parent == tmp_path / "cache" / "aligned"

    # one override moves all three, to another folder of their own
    prep2, train2, ev2 = _sources(cfg_factory, lfw_root, tmp_path, "align.select=largest")
    assert prep2.settings == train2.settings == ev2.settings
    assert prep2.settings["detector"]["select"] == "largest"
    assert prep2.root == train2.root == ev2.root != prep.root


def test_scoring_after_training_can_ask_for_the_crops_eval_scores(cfg_factory, lfw_root, tmp_path):
    """data=lfw_photos trains on centre crops; with align_raw the same data config gives facematch-eval's crops."""
    cfg = cfg_factory("data=lfw_photos", "arch=mobilefacenet", f"data.root={lfw_root}", f"paths.cache_dir={tmp_path}")
    _, dm = build(cfg)
    assert dm.source.mode == "center"
    scored = source_from_config(cfg.data.root, dm.spec.template, cfg.data.preprocess, align_raw=True)
    eval_cfg = cfg_factory("data=lfw_photos", "arch=mobilefacenet", f"data.root={lfw_root}", f"paths.cache_dir={tmp_path}",
                           config_name="eval", out="eval")
    ev = source_from_config(eval_cfg.data.root, TEMPLATE, eval_cfg.data.preprocess, align_raw=True)
    assert scored.key == ev.key == f"align-{TEMPLATE}"
    assert scored.aligned_cache_root == ev.aligned_cache_root
    assert scored.align_kwargs == ev.align_kwargs  # so the embedding caches' keys agree too


def test_old_preprocess_and_eval_align_names_are_one_line_errors(cfg_factory, data_dir, mfn_weights, tmp_path):
    with pytest.raises(FacematchError, match=r"data.preprocess.select is not a preprocessing option.*align.select"):
        source_from_config(tmp_path, TEMPLATE, {"mode": "align", "select": "largest"})
    from facematch.eval.job import evaluate

    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_photos",
                      f"data.root={data_dir / 'lfw' / 'lfw-deepfunneled'}", "+eval.align.select=largest",
                      config_name="eval")
    with pytest.raises(FacematchError, match=r"eval.align.\* is now align.\*.*align.select=largest") as err:
        evaluate(cfg)
    assert "\n" not in str(err.value)
