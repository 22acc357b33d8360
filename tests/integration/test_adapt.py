"""Low-resolution adaptation on the real data: training and evaluation read the same degraded crop of an
image; a last-stages row trains on cached trunk activations, is scored on degraded and original crops,
and facematch-report shows both; facematch-eval scores the pretrained baseline on degraded crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facematch.report.rows import collect
from facematch.report.table import markdown
from facematch.data.transforms import build_transform
from facematch.eval.inputs import eval_source
from facematch.eval.job import evaluate
from facematch.train import build, train
from tests.helpers import FAST, mini_pairs, tiny_pairs


@pytest.mark.parametrize("degrade", [["data.degrade.resolution=16"],
                                     ["data.degrade.resolution=[12,24]", "data.degrade.jpeg=[20,60]",
                                      "data.degrade.grayscale=0.5"]])
def test_training_item_is_the_evaluation_crop_of_the_same_image(cfg_factory, data_dir, degrade):
    cfg = cfg_factory("arch=mobilefacenet", "data=lfw_aligned112", *degrade, "data.augment.enabled=false",
                      "data.features.enabled=false", *FAST)
    _, dm = build(cfg)
    dm.setup("fit")
    rel = dm.val_set.rows[0].a
    dataset = dm.train_set.inner  # the pairs drawn each epoch read their images through it
    assert dataset.source is not dm.val_set.source  # training's source: a random draw per use
    crop = eval_source(cfg, "sphereface_112x96")(rel)  # what facematch-eval and per-fold scoring score
    undegraded = eval_source(cfg, "sphereface_112x96", degraded=False)(rel)
    assert not np.array_equal(crop, undegraded)
    expected = build_transform(dm.spec, None)(crop)
    torch.testing.assert_close(dataset.image(rel), expected, rtol=0, atol=0)  # the training item, exactly
    torch.testing.assert_close(dm.val_set.image(rel), expected, rtol=0, atol=0)


@pytest.mark.slow
def test_last_stages_row_scores_degraded_and_original_crops(cfg_factory, data_dir, mfn_weights, tmp_path):
    pairs = mini_pairs(data_dir, tmp_path / "pairs.txt")
    cfg = cfg_factory("experiment=adapt16_stages", "arch.unfreeze_last=2", f"data.pairs={pairs}", "data.test_fold=1",
                      *FAST, "trainer.max_epochs=1", "logger=csv",
                      f"paths.cache_dir={tmp_path / 'cache'}", "embed.num_workers=0", out="runs/adapt/0")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    m = json.loads((out / "metrics.json").read_text())
    assert m["fold"] == 1 and 0.0 <= m["fold_accuracy"] <= 1.0 and "res16" in m["embedding_cache_key"]
    assert len(m["undegraded"]["fold_scores"]) == len(m["fold_scores"]) == 12
    assert m["undegraded"]["fold_scores"] != m["fold_scores"]  # the original crops score differently
    curves = json.loads((out / "learning_curves.json").read_text())
    assert [r["epoch"] for r in curves] == [-1, 0] and "val/auc" in curves[1] and "train/loss_epoch" in curves[1]
    assert 0.0 < curves[1]["train/active_triplets"] <= 1.0 and "train/active_triplets" not in curves[0]
    assert (out / "learning_curves.png").stat().st_size > 0
    (out / ".hydra").mkdir(exist_ok=True)
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, out / ".hydra" / "config.yaml", resolve=False)
    rows = [row.as_dict() for row in collect([out.parent])]
    assert rows[0]["arch"] == "mobilefacenet (last 2)" and rows[0]["data"] == "lfw-aligned-112 @ res16"
    assert rows[0]["undegraded_accuracy_mean"] == m["undegraded"]["fold_accuracy"]
    assert "| undegraded acc |" in markdown(rows)


def test_eval_of_the_baseline_on_degraded_crops(cfg_factory, data_dir, mfn_weights, tmp_path):
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    common = [f"data.pairs={pairs}", "embed.num_workers=0", "embed.progress=false", f"embed.cache_dir={tmp_path}",
              "eval.plots=false", "eval.tensorboard=false", "eval.identification=false", "eval.tsne_identities=0"]
    low = evaluate(cfg_factory("experiment=adapt16_pretrained", *common, config_name="eval", out="low"))
    full = evaluate(cfg_factory("experiment=exp1_pretrained", *common, config_name="eval", out="full"))
    assert low["preprocess"].endswith("-res16-draw0") and not full["preprocess"].endswith("draw0")
    assert low["embedding_cache"]["cache_key"] != full["embedding_cache"]["cache_key"]
    assert low["auc"] < full["auc"]  # 16 px crops are harder
