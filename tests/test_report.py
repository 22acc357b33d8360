"""facematch-report on an evaluation run: the configuration columns come from the run's Hydra config."""

from __future__ import annotations

import json

import yaml

from facematch.cli.report import collect, markdown


def _eval_run(path, data: dict, align_raw: bool = True, ranking: str | None = "protocol"):
    (path / ".hydra").mkdir(parents=True)
    cfg = {"task_name": "eval", "exp_name": "exp1_pretrained", "eval": {"align_raw": align_raw}, "data": data,
           "arch": {"name": "mobilefacenet", "weights": "/w/mobilefacenet_casia_068.ckpt"}}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = {"accuracy_mean": 0.9923, "accuracy_std": 0.0035, "fold_accuracies": [0.99] * 10,
               "val_at_far_1e-3": 0.9483, "f1_at_threshold": 0.79, "accuracy_at_threshold": 0.83, "seconds": 6.0,
               # metrics.json describes its pairs file under "data" too: it must not replace the column
               "data": {"format": "lfw", "n_folds": 10}}
    if ranking:
        metrics["ranking_scores"] = ranking
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_eval_rows_name_the_images_they_were_scored_on(tmp_path):
    _eval_run(tmp_path / "raw", {"root": "/d/lfw/lfw-deepfunneled", "preprocess": {"mode": "center"}})
    _eval_run(tmp_path / "aligned", {"root": "/d/lfw-aligned-112", "preprocess": {"mode": "prealigned"}})
    _eval_run(tmp_path / "crop", {"root": "/d/lfw/lfw-deepfunneled", "preprocess": {"mode": "center"}}, align_raw=False,
              ranking=None)  # written before VAL moved to the protocol scores
    rows = {r["_path"].split("/")[-2]: r for r in collect([tmp_path])}
    assert rows["raw"]["data"] == "lfw-deepfunneled (own alignment)"
    assert rows["aligned"]["data"] == "lfw-aligned-112"
    assert rows["crop"]["data"] == "lfw-deepfunneled (centre crop)"
    assert rows["raw"]["n_folds"] == 10 and rows["raw"]["pretrained on"] == "CASIA-WebFace"
    table = markdown(list(rows.values()))
    assert "| exp1_pretrained | lfw-deepfunneled (own alignment) | mobilefacenet | CASIA-WebFace |" in table
    assert "99.23 ± 0.35 | 94.83 |" in table
    assert table.count("(raw cos)") == 1 and rows["crop"]["val_scores"] == "raw cosine"
