"""One evaluation path: the per-fold score written after training equals facematch-eval's score of the same
checkpoint, fold and crops, pair by pair (raw photos: both align them with MTCNN)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from facematch.eval.job import evaluate
from facematch.train import train
from tests.helpers import FAST, mini_pairs


@pytest.mark.slow
def test_per_fold_score_equals_facematch_eval_pair_by_pair(cfg_factory, data_dir, mfn_weights, tmp_path):
    pairs = mini_pairs(data_dir, tmp_path / "pairs.txt")
    cache = tmp_path / "cache"
    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "head.init=random",
                      "head.dim=64", "data=lfw_photos", f"data.pairs={pairs}", "data.test_fold=1", "trainer.max_epochs=2",
                      "logger=csv", f"paths.cache_dir={cache}", "embed.num_workers=0", *FAST, "data.max_identities=60",
                      out="train")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    fold = json.loads((out / "metrics.json").read_text())
    ckpt = json.loads((out / "train_metrics.json").read_text())["best_model_path"]
    assert fold["selected"] == Path(ckpt).stem  # the checkpoint per-fold scoring used

    ev = cfg_factory(f"ckpt_path={ckpt}", "data=lfw_photos", f"data.pairs={pairs}", f"paths.cache_dir={cache}",
                     "embed.num_workers=0", "embed.progress=false", "eval.plots=false", "eval.tensorboard=false",
                     "eval.identification=false", "eval.tsne_identities=0", config_name="eval", out="eval")
    m = evaluate(ev)
    assert m["preprocess"] == "align-sphereface_112x96"  # raw photos, aligned by both
    with open(Path(ev.paths.output_dir) / "pair_scores.tsv") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if int(r["fold"]) == 1]
    assert len(rows) == len(fold["fold_scores"]) == 12
    np.testing.assert_allclose([float(r["cosine"]) for r in rows], fold["fold_scores"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([float(r["protocol_score"]) for r in rows], fold["fold_protocol_scores"],
                               rtol=0, atol=1e-6)
    assert [int(r["same"]) for r in rows] == fold["fold_same"]
    assert m["fold_accuracies"][1] == fold["fold_accuracy"]
    assert m["embedding_cache"]["computed"] == 0  # the backbone outputs per-fold scoring cached were reused
