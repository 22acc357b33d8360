"""What a training run hands TensorBoard's HParams view (facematch.callbacks.dashboard): its hyper-parameters from
the composed config, Hydra's choices and overrides; its result from the scored fold; the image cadence; and
the lines a multirun ends with (facematch.callbacks.summary.sweep_summary). The sweep itself, read back with
TensorBoard's loaders: tests/integration/test_dashboards.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from facematch.callbacks.dashboard import DashboardFigures, run_hparams, run_result
from facematch.eval.metrics import score_metrics
from facematch.callbacks.summary import sweep_summary

CFG = OmegaConf.create({"margin": 0.7, "seed": 3, "optimizer": {"lr": 0.01}, "arch": {"freeze": True, "weights": "w.ckpt"},
                        "data": {"test_fold": 2, "pk": {"p": 4, "k": 2}}, "lr_copy": "${optimizer.lr}"})
CHOICES = {"loss": "triplet", "arch": "mobilefacenet", "miner": None, "data": "lfw_aligned112", "optimizer": "adam",
           "callbacks": "default", "hydra/launcher": "basic"}


def test_hparams_hold_the_groups_the_values_and_every_override_as_the_config_resolved_it():
    overrides = ["margin=0.7", "arch.freeze=true", "loss=triplet", "+data.pk={p:4,k:2}", "lr_copy=0.5",
                 "~callbacks.early_stopping", "hydra.sweep.dir=/x", "hydra/launcher=basic"]
    hp = run_hparams(CFG, CHOICES, overrides)
    assert hp == {"loss": "triplet", "arch": "mobilefacenet", "miner": "none", "data": "lfw_aligned112",
                  "optimizer": "adam", "margin": 0.7, "optimizer.lr": 0.01, "data.test_fold": 2, "seed": 3,
                  "arch.freeze": "true", "data.pk": json.dumps({"p": 4, "k": 2}), "lr_copy": 0.01,
                  "callbacks.early_stopping": "removed"}


def test_hparams_without_overrides_still_name_the_run():
    hp = run_hparams(CFG, CHOICES, [])
    assert hp["margin"] == 0.7 and hp["loss"] == "triplet" and "arch.freeze" not in hp


def _fold(rng):
    same = np.r_[np.ones(30), np.zeros(30)].astype(int)
    cosine = np.where(same == 1, 0.6, 0.3) + rng.normal(0, 0.15, same.size)
    return {"fold": 4, "fold_accuracy": 0.85, "fold_scores": cosine.tolist(),
            "fold_protocol_scores": (cosine - 0.05).tolist(), "fold_same": same.tolist(),
            "identification": {"rank_1": 0.5, "rank_5": 0.75, "template": {"template_rank_1": 0.4, "n_probes": 9}}}


def test_result_is_the_folds_figures_under_the_protocol_and_at_the_fixed_threshold():
    fold = _fold(np.random.default_rng(0))
    result = run_result({"best/val/auc": 0.9, "val/auc": 0.8, "test/acc": 0.7}, fold, 0.6, (1e-3, 1e-2))
    expect = score_metrics(fold["fold_scores"], fold["fold_protocol_scores"], fold["fold_same"], threshold=0.6)
    assert result == {
        "result/fold_accuracy": 0.85, "result/auc": expect["auc"], "result/eer": expect["eer"],
        "result/accuracy_at_threshold": expect["accuracy_at_threshold"],
        "result/f1_at_threshold": expect["f1_at_threshold"],
        "result/val_at_far_1e-3": expect["val_at_far_1e-3"], "result/val_at_far_1e-2": expect["val_at_far_1e-2"],
        "result/rank_1": 0.5, "result/rank_5": 0.75, "result/template_rank_1": 0.4, "result/best_val_auc": 0.9}


def test_without_a_fold_the_result_is_the_test_loops_and_the_best_epochs():
    result = run_result({"best/val/template_rank_1": 0.3, "val/auc": 0.8, "test/acc": 0.7, "test/f1": 0.6}, None,
                        0.6, (1e-3,))
    assert result == {"result/test_acc": 0.7, "result/test_f1": 0.6, "result/best_val_template_rank_1": 0.3}


@pytest.mark.parametrize("every,max_epochs,drawn", [(1, 3, [0, 1, 2]), (3, 7, [0, 3, 6]), (4, 6, [0, 4, 5]),
                                                     (3, -1, [0, 3])])
def test_images_are_drawn_every_n_epochs_and_at_the_last(tmp_path, every, max_epochs, drawn):
    from lightning.pytorch.loggers import TensorBoardLogger

    callback = DashboardFigures(every_n_epochs=every)
    logger = TensorBoardLogger(tmp_path, name=None, version="")

    def due(epoch, **kw):
        trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[logger], current_epoch=epoch,
                                  max_epochs=max_epochs, **kw)
        return callback._due(trainer)

    assert [e for e in range(max_epochs if max_epochs > 0 else 5) if due(e)] == drawn
    assert not DashboardFigures()._due(SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[],
                                                       current_epoch=0, max_epochs=1))  # no TensorBoard logger


def test_cadence_below_one_is_refused():
    with pytest.raises(ValueError, match="every_n_epochs"):
        DashboardFigures(every_n_epochs=0)


def test_sweep_summary_lists_each_job_with_what_sets_it_apart_and_one_tensorboard_command(tmp_path):
    for job, margin, acc in ((0, 0.2, 0.9), (1, 0.5, 0.95), (10, 1.0, None)):
        hydra = tmp_path / str(job) / ".hydra"
        hydra.mkdir(parents=True)
        hydra.joinpath("overrides.yaml").write_text(f"- margin={margin}\n- data.test_fold=1\n")
        if acc is not None:
            (tmp_path / str(job) / "metrics.json").write_text(json.dumps({"fold": 1, "fold_accuracy": acc}))
            (tmp_path / str(job) / "tensorboard").mkdir()
    lines = sweep_summary(tmp_path).splitlines()
    assert lines == ["", f"Sweep: 3 jobs in {tmp_path}",
                     "  0   fold 1 accuracy 0.9000   (margin=0.2)",
                     "  1   fold 1 accuracy 0.9500   (margin=0.5)",
                     "  10  no result (the job failed or is still running)   (margin=1.0)",
                     f"  TensorBoard, every job (HParams tab: side by side): tensorboard --logdir {tmp_path}"]
