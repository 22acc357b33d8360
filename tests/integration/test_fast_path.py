"""Frozen-backbone fast path, per-fold evaluation and the results table, on real aligned LFW crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facematch.cli.report import main as report_main
from facematch.report.rows import collect
from facematch.train import train
from tests.helpers import FAST, mini_pairs

pytestmark = pytest.mark.usefixtures("data_dir")  # every test reads lfw-aligned-112


@pytest.mark.slow
def test_frozen_fast_path_per_fold_and_report(cfg_factory, data_dir, mfn_weights, tmp_path, capsys):
    pairs = mini_pairs(data_dir, tmp_path / "pairs.txt")
    common = ["arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "data=lfw_aligned112",
              f"data.pairs={pairs}", "trainer.max_epochs=1", "logger=csv", f"paths.cache_dir={tmp_path}/cache",
              *FAST, "data.max_identities=60", "exp_name=unit"]
    for fold in (0, 1):
        cfg = cfg_factory(*common, f"data.test_fold={fold}", out=f"sweep/{fold}")
        metrics = train(cfg)
        assert 0.5 <= metrics["test/auc"] <= 1.0
        out = Path(cfg.paths.output_dir)
        summary = json.loads((out / "train_metrics.json").read_text())
        assert summary["data"]["features"]["views"] == 2  # the fast path was taken
        m = json.loads((out / "metrics.json").read_text())
        assert m["fold"] == fold and len(m["fold_scores"]) == 12 and sum(m["fold_same"]) == 6
        assert len(m["fold_protocol_scores"]) == 12  # mean-subtracted: not the raw cosine
        assert not np.allclose(m["fold_protocol_scores"], m["fold_scores"])
        assert 0.0 <= m["fold_accuracy"] <= 1.0
        (out / ".hydra").mkdir(exist_ok=True)
        from omegaconf import OmegaConf

        (out / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    # the second fold reused the cached backbone features
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1

    rows = [row.as_dict() for row in collect([tmp_path / "sweep"])]
    assert len(rows) == 1 and rows[0]["n_folds"] == 2 and rows[0]["exp"] == "unit"
    assert rows[0]["loss"] == "contrastive" and rows[0]["pretrained on"] == "CASIA-WebFace"
    assert rows[0]["val_scores"] == "protocol"
    report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "table.md")])
    table = (tmp_path / "table.md").read_text()
    assert "| unit | lfw-aligned-112 | mobilefacenet (frozen) | CASIA-WebFace | contrastive |" in table
    assert "(2 folds)" in table


def test_fast_path_head_sees_the_same_features_as_the_backbone(cfg_factory, mfn_weights, tmp_path):
    from facematch.train import build

    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "data=lfw_aligned112",
                      *FAST, f"paths.cache_dir={tmp_path}/cache", "embed.precision=fp32")  # compared with fp32
    model, dm = build(cfg)
    dm.setup("fit")
    rel = dm.val_set.rows[0].a
    feats = dm.feature_store(rel)  # (2, 128): plain and mirror
    crop = dm.source(rel)
    from facematch.embedding.embedder import normalize_batch

    with torch.no_grad():
        x = normalize_batch(np.stack([crop, crop[:, ::-1].copy()]), model.backbone.spec)
        direct = model.backbone.eval()(x).numpy()
    assert np.allclose(feats, direct, atol=1e-4)
    xa = dm.val_set[0][0]
    assert xa.shape == (128,) and torch.allclose(xa, torch.from_numpy(feats[0]))
    # the datasets were built once, reading the store: no crop source left behind in any of them
    assert dm.train_set.inner.source is dm.feature_store is dm.val_set.source


def test_mean_backbone_feature_for_a_centred_head(cfg_factory, mfn_weights, tmp_path):
    """From the feature store (the plain view of every training image) on the fast path; otherwise from
    one pass of the backbone over training images."""
    from facematch.data.datasets import images_of
    from facematch.train import build

    common = ["arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "data=lfw_aligned112", *FAST,
              "data.augment.enabled=false", f"paths.cache_dir={tmp_path}/cache"]
    model, dm = build(cfg_factory(*common))
    dm.setup("fit")
    rels = sorted(images_of(dm.train_set))
    mean = dm.mean_backbone_feature(model.net.backbone)
    assert torch.allclose(mean, torch.from_numpy(np.stack([dm.feature_store(r)[0] for r in rels])).mean(0))

    model, images = build(cfg_factory(*common, "data.features.enabled=false", out="images"))
    images.setup("fit")
    assert images.feature_store is None
    backbone = model.net.backbone.train()
    torch.manual_seed(5)
    direct = images.mean_backbone_feature(backbone, max_images=16)
    assert backbone.training  # put back as it was
    torch.manual_seed(5)  # the same shuffle: the first two batches of 8 training images, in eval mode
    batches = iter(images.train_dataloader())
    with torch.no_grad():
        expected = torch.cat([backbone.eval()(next(batches)[0]) for _ in range(2)]).mean(0)
    torch.testing.assert_close(direct, expected)


def test_cold_cache_trains_like_a_warm_one(cfg_factory, data_dir, mfn_weights, tmp_path):
    """The main command's fast path, twice on one cache folder: the first run computes the trunk features
    (and draws nothing from the seeded random streams while it does), the second reads them; both train the
    same head and score fold 0 the same, to the last bit."""
    pairs = mini_pairs(data_dir, tmp_path / "pairs.txt")
    common = ["arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "loss=triplet",
              "data=lfw_aligned112", f"data.pairs={pairs}", "data.test_fold=0", "trainer.max_epochs=1",
              "logger=csv", f"paths.cache_dir={tmp_path}/cache", "embed.progress=false", *FAST]
    runs = {}
    for name in ("cold", "warm"):
        cfg = cfg_factory(*common, out=name)
        train(cfg)
        out = Path(cfg.paths.output_dir)
        runs[name] = (json.loads((out / "metrics.json").read_text()),
                      json.loads((out / "train_metrics.json").read_text()))
    (cold, cold_train), (warm, warm_train) = runs["cold"], runs["warm"]
    assert cold_train["data"]["features"]["views"] == 2  # the fast path, through the embedding cache
    assert cold["fold_scores"] == warm["fold_scores"] and cold["fold_accuracy"] == warm["fold_accuracy"]
    assert cold_train["train/loss_epoch"] == warm_train["train/loss_epoch"]
