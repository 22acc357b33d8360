"""The lines a training run ends with (facematch.callbacks.summary.run_summary): the fold-k result first, the fixed
0.6-threshold metric labelled as the original experiments', then the files and the tensorboard command."""

from __future__ import annotations

from facematch.callbacks.summary import run_summary

FILES = {"metrics": "/runs/x/metrics.json", "best checkpoint": "/runs/x/checkpoints/epoch_002.ckpt"}


def test_summary_says_the_fold_result_then_the_fixed_threshold_metric_then_the_files():
    metrics = {"test/acc": 0.87166, "test/f1": 0.85277, "best/val/auc": 0.998}
    fold = {"fold": 3, "fold_accuracy": 0.98833, "selected": "epoch_002"}
    lines = run_summary(metrics, fold, 0.6, FILES, "/runs/x/tensorboard").splitlines()
    assert lines[1] == "Result"
    assert lines[2].startswith("  fold 3 accuracy: 0.9883   (LFW 10-fold protocol") and "model: epoch_002" in lines[2]
    assert lines[3] == ("  fixed threshold 0.6 (the original experiments' metric): accuracy 0.8717, F1 0.8528 "
                        "on the test pairs")
    assert lines[4:] == ["Files",
                         "  metrics          /runs/x/metrics.json",
                         "  best checkpoint  /runs/x/checkpoints/epoch_002.ckpt",
                         "  TensorBoard      /runs/x/tensorboard   (tensorboard --logdir /runs/x/tensorboard)"]


def test_with_fold_scores_the_fixed_threshold_figures_are_the_reports():
    """The fold's raw cosine scores at 0.6 (what facematch-report pools), not the test loop's own pass."""
    fold = {"fold": 0, "fold_accuracy": 0.9, "selected": "epoch_000",
            "fold_scores": [0.9, 0.7, 0.5, 0.65, 0.2, 0.1], "fold_same": [1, 1, 1, 0, 0, 0]}
    text = run_summary({"test/acc": 0.5, "test/f1": 0.5}, fold, 0.6, FILES, None)
    # predicted same: 0.9, 0.7, 0.65 -> 2 true positives, 1 false positive, 1 false negative, 2 true negatives
    assert ("  fixed threshold 0.6 (the original experiments' metric, raw cosine): accuracy 0.6667, F1 0.6667 "
            "on fold 0's pairs") in text.splitlines()


def test_without_a_fold_it_says_why_and_gives_the_best_validation_value():
    text = run_summary({"best/val/auc": 0.91234, "val/auc": 0.9}, None, 0.6,
                       {"metrics": "/r/train_metrics.json", "best checkpoint": None}, None)
    assert "no fold scored (needs data.test_fold=K and evaluate=true); best validation epoch: val/auc 0.9123" in text
    assert "fixed threshold" not in text and "checkpoint" not in text and "tensorboard" not in text
    assert text.endswith("  metrics  /r/train_metrics.json")


def test_a_multirun_job_names_its_sweep_folder_for_tensorboard():
    fold = {"fold": 0, "fold_accuracy": 0.9, "selected": "epoch_000"}
    text = run_summary({}, fold, 0.6, FILES, "/sweep/2/tensorboard", "/sweep")
    assert text.splitlines()[-1] == ("  TensorBoard      /sweep/2/tensorboard   (every run of the sweep: "
                                     "tensorboard --logdir /sweep)")
