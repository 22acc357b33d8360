"""facematch-report: the configuration columns come from each run's Hydra config; per-fold jobs pool their
scores."""

from __future__ import annotations

import json

import pytest
import yaml

from facematch.report.rows import FoldJob, collect, combine_folds
from facematch.report.table import markdown


def rows_of(root):
    return [r.as_dict() for r in collect([root])]
from facematch.errors import FacematchError
from facematch.report import published


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
    rows = {r["_path"].split("/")[-2]: r for r in rows_of(tmp_path)}
    assert rows["raw"]["data"] == "lfw-deepfunneled (own alignment)"
    assert rows["aligned"]["data"] == "lfw-aligned-112"
    assert rows["crop"]["data"] == "lfw-deepfunneled (centre crop)"
    assert rows["raw"]["n_folds"] == 10 and rows["raw"]["pretrained on"] == "CASIA-WebFace"
    table = markdown(list(rows.values()))
    assert "| exp1_pretrained | lfw-deepfunneled (own alignment) | mobilefacenet | CASIA-WebFace |" in table
    assert "99.23 ± 0.35 | 94.83 |" in table
    assert table.count("(raw cos)") == 1 and rows["crop"]["val_scores"] == "raw cosine"


def test_one_side_degraded_rows_say_so(tmp_path):
    aligned = {"root": "/d/lfw-aligned-112", "preprocess": {"mode": "prealigned"}}
    _eval_run(tmp_path / "both", {**aligned, "degrade": {"resolution": 16, "side": "both"}})
    _eval_run(tmp_path / "second", {**aligned, "degrade": {"resolution": 16, "side": "second"}})
    rows = {r.path.split("/")[-2]: r.as_dict() for r in collect([tmp_path])}
    assert rows["both"]["data"] == "lfw-aligned-112 @ res16"
    assert rows["second"]["data"] == "lfw-aligned-112 @ res16 (2nd image only)"


def test_per_fold_cross_quality_figures_are_combined():
    jobs = [{"fold": k, "fold_accuracy": 0.9, "fold_scores": [0.5, 0.1], "fold_same": [1, 0],
             "cross": {"fold_accuracy": a}, "cross_teacher": {"fold_accuracy": b}} for k, (a, b) in
            enumerate(((0.92, 0.94), (0.90, 0.93)))]
    row = combine_folds([FoldJob(m, 0.6) for m in jobs])
    assert row["cross_accuracy_mean"] == pytest.approx(0.91) and row["cross_accuracy_std"] == pytest.approx(0.01)
    assert row["cross_teacher_accuracy_mean"] == pytest.approx(0.935)
    assert "symmetric_accuracy_mean" not in row  # only where every fold has it


def _train_fold_run(path, fold: int, loss_name: str, miner_name: str):
    (path / ".hydra").mkdir(parents=True)
    cfg = {"task_name": "train", "exp_name": "exp3", "loss_name": loss_name, "miner_name": miner_name,
           "loss": {"_target_": "facematch.losses.triplet.TripletMarginLoss", "margin": "${margin}"}, "margin": 0.2,
           "arch": {"name": "mobilefacenet", "weights": "/w/mobilefacenet_casia_068.ckpt", "freeze": True},
           "optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-4}, "scheduler": {}, "threshold": 0.6,
           "data": {"root": "/d/lfw-aligned-112", "preprocess": {"mode": "prealigned"}}}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = {"fold": fold, "fold_accuracy": 0.99, "fold_scores": [0.9, 0.1], "fold_protocol_scores": [0.8, -0.2],
               "fold_same": [1, 0], "seconds": 60.0, "selected": "epoch_001"}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_training_rows_name_the_loss_and_miner_options_from_the_config(tmp_path):
    for fold in (0, 1):
        _train_fold_run(tmp_path / "mined" / str(fold), fold, "triplet", "batch_hard")
        _train_fold_run(tmp_path / "fixed" / str(fold), fold, "triplet", "none")
    rows = {r["_path"].split("/")[-1]: r for r in rows_of(tmp_path)}
    assert rows["mined"]["loss"] == "triplet (batch_hard)" and rows["fixed"]["loss"] == "triplet"
    assert rows["mined"]["arch"] == "mobilefacenet (frozen)" and rows["mined"]["n_folds"] == 2


def test_training_rows_say_how_they_were_batched_and_their_weight_decay(tmp_path):
    """Two rows that differ only in batches, augmentation and weight decay are two rows, each saying so."""
    layouts = {"pk": ({"_target_": "facematch.data.batches.PKBatches"}, True, 5e-4),
               "images": ({"_target_": "facematch.data.batches.ImageBatches"}, False, 0.0)}
    for name, (kind, augment, wd) in layouts.items():
        path = tmp_path / name / "0"
        _train_fold_run(path, 0, "triplet", "batch_hard")
        cfg = yaml.safe_load((path / ".hydra" / "config.yaml").read_text())
        cfg["data"].update(batches=kind, pk={"p": 8, "k": 2}, batch_size=16, augment={"enabled": augment})
        cfg["optimizer"]["weight_decay"] = wd
        (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    _train_fold_run(tmp_path / "old" / "0", 0, "triplet", "none")  # a config from before data.batches
    # the frozen-trunk fast path (recorded by the run) replaces data.augment with cached views
    fast = tmp_path / "fast" / "0"
    _train_fold_run(fast, 0, "triplet", "batch_hard")
    cfg = yaml.safe_load((fast / ".hydra" / "config.yaml").read_text())
    cfg["data"].update(batches=layouts["pk"][0], pk={"p": 32, "k": 4}, augment={"enabled": True})
    (fast / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (fast / "train_metrics.json").write_text(json.dumps({"epochs": 1, "data": {"features": {"views": 2}}}))
    rows = {r["_path"].split("/")[-1]: r for r in rows_of(tmp_path)}
    assert rows["fast"]["batches"] == "P x K 32 x 4, 2 cached views"
    assert rows["pk"]["batches"] == "P x K 8 x 2, augmented" and rows["pk"]["optimizer"] == "Adam lr=0.0001 wd=0.0005"
    assert rows["images"]["batches"] == "16 images" and rows["images"]["optimizer"] == "Adam lr=0.0001"
    assert rows["old"]["batches"] == "—"
    table = markdown(list(rows.values()))
    assert table.splitlines()[0].count("| batches |") == 1 and "| P x K 8 x 2, augmented |" in table
    assert "| batches |" not in markdown([rows["old"]])  # shown only where some row has a layout


def test_combine_folds_pools_scores():
    jobs = [{"fold": k, "fold_accuracy": acc, "fold_scores": [0.9, 0.1], "fold_same": [1, 0], "seconds": 2.0}
            for k, acc in enumerate([1.0, 0.5])]
    row = combine_folds([FoldJob(m, 0.6) for m in jobs])
    assert row["accuracy_mean"] == pytest.approx(0.75) and row["accuracy_std"] == pytest.approx(0.25)
    assert row["accuracy_at_threshold"] == 1.0 and row["f1_at_threshold"] == 1.0 and row["seconds"] == 4.0
    with pytest.raises(Exception, match="duplicate folds"):
        combine_folds([FoldJob(m, 0.6) for m in jobs + jobs[:1]])


def test_combine_folds_adds_undegraded_identification_and_final_loss_when_every_fold_has_them():
    def job(k, acc, clean, r5, loss):
        return {"fold": k, "fold_accuracy": acc, "fold_scores": [0.9, 0.1], "fold_same": [1, 0],
                "undegraded": {"fold_accuracy": clean}, "identification": {"rank_5": r5, "knn_accuracy": r5 - 0.1},
                "train_metrics": {"train/loss_epoch": loss}}

    jobs = [job(0, 0.8, 0.98, 0.9, 0.2), job(1, 0.9, 0.96, 0.7, 0.4)]
    row = combine_folds([FoldJob(m, 0.6) for m in jobs])
    assert row["undegraded_accuracy_mean"] == pytest.approx(0.97) and row["undegraded_accuracy_std"] == pytest.approx(0.01)
    assert row["rank_5"] == pytest.approx(0.8) and row["knn_accuracy"] == pytest.approx(0.7)
    assert row["final_loss"] == pytest.approx(0.3)
    del jobs[1]["undegraded"], jobs[1]["identification"]  # one fold without them: no half-made means
    row = combine_folds([FoldJob(m, 0.6) for m in jobs])
    assert "undegraded_accuracy_mean" not in row and "rank_5" not in row
    table = markdown([{**row, "exp": "e", "data": "d", "arch": "a", "pretrained on": "p", "loss": "l", "margin": "0.2",
                       "optimizer": "o", "scheduler": "s"}])
    assert "| — | — | 0.3000 |" in table  # undegraded acc, Rank-5 / kNN, final loss


def _published_run(path, fold: int, margin: float, published: dict | None, metrics_extra: dict, exp="scratch"):
    _train_fold_run(path, fold, "triplet", "top_k")
    cfg = yaml.safe_load((path / ".hydra" / "config.yaml").read_text())
    cfg.update(margin=margin, published=published, exp_name=exp)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = json.loads((path / "metrics.json").read_text())
    metrics.update(metrics_extra)
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_rows_naming_a_published_table_get_its_figures_for_their_margin_side_by_side(tmp_path):
    """The figures come from published.yaml by the run's margin (1.7 and 1.9 are the FaceNet table's
    columns; 0.7 has none), each beside the metric the file names, "none" where nothing of ours is the same
    quantity; the published arch is named."""
    extra = {"fold_accuracy": 0.75, "identification": {"rank_5": 0.3, "knn_accuracy": 0.14,
                                                       "template": {"template_rank_1": 0.25, "template_rank_5": 0.6}},
             "train_metrics": {"train/loss_epoch": 1.91}}
    for margin in (0.7, 1.7, 1.9):
        _published_run(tmp_path / str(margin), 0, margin, {"table": "facenet_implementation"}, extra)
    _train_fold_run(tmp_path / "other" / "0", 0, "triplet", "none")  # no published table: not in the second one
    rows = rows_of(tmp_path)
    table = markdown(rows)
    side = table.split("Next to the published figures (FaceNet implementation (seeds/003_")[1]
    t = published.table("facenet_implementation")
    for margin in (1.7, 1.9):
        figs = {f["id"]: f for f in t["figures"] if f["key"] == margin}
        line = next(x for x in side.splitlines() if x.startswith(f"| scratch | mobilefacenet (frozen) | {margin} |"))
        assert f"| {t['arch']} |" in line
        assert f"| 25.00 / {figs['Rank5 (LFW)']['text']} |" in line           # template Rank-1 beside "Rank5"
        assert f"| 1.9100 / {figs['Loss (VggFace2)']['text']} |" in line      # the training loss
        assert f"| none / {figs['kNN']['text']} |" in line and f"| none / {figs['Contrastive']['text']} |" in line
        assert f"| — / {figs['Rank5 (VggFace2)']['text']} |" in line          # not computed by these rows
    line_07 = next(x for x in side.splitlines() if x.startswith("| scratch | mobilefacenet (frozen) | 0.7 |"))
    assert set(line_07.split("|")[6:-1]) == {" — "}                              # nothing published for 0.7
    assert "| exp3 |" not in side and side.count("| scratch |") == 3


def test_an_evaluation_row_gets_its_published_row_by_key(tmp_path):
    _eval_run(tmp_path / "irv1", {"root": "/d/lfw-aligned-112", "preprocess": {"mode": "prealigned"}})
    cfg_path = tmp_path / "irv1" / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["published"] = {"table": "face_matching", "row": "exp1"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    (row,) = rows_of(tmp_path)
    figs = {f["id"]: f for f in published.table("face_matching")["figures"] if f["key"] == "exp1"}
    assert row["published"]["figures"]["F1 Score"]["text"] == figs["F1 Score"]["text"]
    line = markdown([row]).split("Next to the published figures")[1].splitlines()[-1]
    assert f"| 0.7900 / {figs['F1 Score']['text']} | 0.8300 / {figs['Accuracy']['text']} |" in line


def test_a_config_carrying_figures_itself_or_naming_no_known_table_is_one_clear_error(tmp_path):
    _train_fold_run(tmp_path / "bad" / "0", 0, "triplet", "batch_hard")
    cfg_path = tmp_path / "bad" / "0" / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["published"] = {"rows": [{"margin": 1.7, "pair_accuracy": 0.5}]}  # the old shape: figures in the config
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(FacematchError, match="the figures themselves live there"):
        rows_of(tmp_path)
    cfg["published"] = {"table": "no_such_table"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(FacematchError, match="no published table 'no_such_table'"):
        rows_of(tmp_path)


def test_a_distillation_term_is_named_beside_the_loss_with_its_weights(tmp_path):
    for name, weights in (("plain", None), ("term", {"main": 1.0, "distill": 1.0}), ("half", {"main": 1.0, "distill": 0.5})):
        _train_fold_run(tmp_path / name / "0", 0, "triplet", "batch_hard")
        if weights:
            cfg_path = tmp_path / name / "0" / ".hydra" / "config.yaml"
            cfg = yaml.safe_load(cfg_path.read_text())
            cfg["distill_loss"] = {"_target_": "facematch.losses.weighted.WeightedLosses", "weights": weights}
            cfg_path.write_text(yaml.safe_dump(cfg))
    rows = {r["_path"].split("/")[-1]: r["loss"] for r in rows_of(tmp_path)}
    assert rows == {"plain": "triplet (batch_hard)", "term": "triplet (batch_hard) + distill",
                    "half": "triplet (batch_hard) + 0.5 x distill"}


def test_a_one_job_row_reports_its_auc_images_seen_and_learning_curve(tmp_path):
    job = tmp_path / "scratch" / "0"
    _train_fold_run(job, 0, "arcface", "none")
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    cfg["data"]["train_samples"] = 3456
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (job / "train_metrics.json").write_text(json.dumps({"epochs": 6}))
    (job / "learning_curves.json").write_text(json.dumps(
        [{"epoch": 0, "val/auc": 0.61, "train/loss_epoch": 9.0}, {"epoch": 1, "val/auc": 0.7349}]))
    [row] = rows_of(tmp_path)
    assert row["images_seen"] == 6 * 3456 and row["val_auc_per_epoch"] == "0.610, 0.735"
    assert row["auc"] == 1.0  # the one same pair outscores the one different pair
    table = markdown([row])
    assert table.splitlines()[0].endswith("| CPU | AUC | images seen | val AUC per epoch |")
    assert table.splitlines()[2].endswith("| 1.0000 | 20,736 | 0.610, 0.735 |")


def test_a_row_trained_on_original_crops_too_says_so_in_its_data_column(tmp_path):
    for name, originals in (("degraded", False), ("mixed", True)):
        _train_fold_run(tmp_path / name / "0", 0, "triplet", "batch_hard")
        cfg_path = tmp_path / name / "0" / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["data"].update(degrade={"resolution": 16}, features={"enabled": "auto", "views": 2, "originals": originals})
        cfg_path.write_text(yaml.safe_dump(cfg))
    rows = {r["_path"].split("/")[-1]: r["data"] for r in rows_of(tmp_path)}
    assert rows == {"degraded": "lfw-aligned-112 @ res16", "mixed": "lfw-aligned-112 @ res16 + originals"}


def test_the_margin_column_is_what_the_loss_config_declares(tmp_path):
    """A loss reads the margin when its config declares a unit (``margin_unit``), whatever its loss node holds:
    a declared null shows no margin though the node names one; runs saved before the declaration fall back
    to whether their loss node takes a margin."""
    from facematch.report.describe import reads_margin

    def run(name, **cfg_extra):
        _train_fold_run(tmp_path / name / "0", 0, "triplet", "none")
        path = tmp_path / name / "0" / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg.update(cfg_extra)
        path.write_text(yaml.safe_dump(cfg))

    run("declared_none", margin_unit=None)
    run("declared_distance", margin_unit="distance", loss={"_target_": "x.Loss", "alpha": 0.2})
    run("undeclared")
    rows = {r["_path"].split("/")[-1]: r["margin"] for r in rows_of(tmp_path)}
    assert rows == {"declared_none": "—", "declared_distance": "0.2", "undeclared": "0.2"}
    assert not reads_margin({"loss": {"_target_": "facematch.losses.distill.CosineDistillLoss"}})
