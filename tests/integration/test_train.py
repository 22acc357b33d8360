"""Training end to end on a small real LFW subset: fast_dev_run, multirun, resume, DDP on CPU, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from facematch.errors import FacematchError
from facematch.models.net import EmbeddingNet
from facematch.train import train
from tests.helpers import FAST, run_cli


@pytest.mark.parametrize("loss,extra", [
    ("contrastive", []),
    ("triplet", []),
    ("triplet", ["miner=batch_hard", "head=mlp"]),
    ("triplet", ["miner=semi_hard", "optimizer=sgd", "scheduler=step"]),
    ("contrastive", ["miner=batch_hard"]),  # the miner's triplets (a, p, n) as pairs (a, p), (a, n)
])
@pytest.mark.usefixtures("data_dir")
def test_fast_dev_run(cfg_factory, mfn_weights, loss, extra):
    cfg = cfg_factory(f"loss={loss}", "arch=mobilefacenet", f"arch.weights={mfn_weights}",
                      "trainer.fast_dev_run=true", *FAST, *extra)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"]))
    assert 0.0 <= metrics["val/auc"] <= 1.0


@pytest.mark.usefixtures("data_dir")
def test_fast_dev_run_inception_frozen_with_test_fold(cfg_factory):
    cfg = cfg_factory("arch=inception_resnet_v1", "arch.freeze=true", "data.features.enabled=false", "trainer.fast_dev_run=true",
                      "data.test_fold=0", *FAST)
    metrics = train(cfg)
    assert "test/auc" in metrics


@pytest.mark.slow
@pytest.mark.usefixtures("data_dir")
def test_train_checkpoint_then_resume(cfg_factory):
    """One real epoch on 40 people (checkpoints with plain data, TensorBoard + CSV logs, a summary JSON),
    then a resumed run from last.ckpt that continues to epoch 2 instead of starting over."""
    first = cfg_factory("arch=mobilefacenet", "loss=contrastive", "trainer.max_epochs=1", *FAST,
                        "optimizer.lr=0.01", "logger=many", out="a")
    metrics = train(first)
    out = Path(first.paths.output_dir)
    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["facematch"]["backbone"] == "mobilefacenet" and ckpt["epoch"] == 0
    assert ckpt["facematch"]["config"]["arch"]["name"] == "mobilefacenet"
    assert ckpt["facematch"]["arch"] == ckpt["facematch"]["config"]["arch"]  # the nodes the eval instantiates
    assert ckpt["facematch"]["head"]["_target_"] == "facematch.models.heads.LinearHead"
    assert ckpt["hyper_parameters"] == {"threshold": 0.6, "monitor": "val/auc"}
    assert {k.split(".")[1] for k in ckpt["state_dict"]} == {"backbone", "head"}  # net.backbone.*, net.head.*
    # the eval rebuilds the trained net from the checkpoint alone and scores the head's projection
    from facematch.models.loading import load_checkpoint_model

    scored = load_checkpoint_model(last)
    assert scored.spec.name == "mobilefacenet" and scored.description["head"]["init"] == "identity"
    trained = EmbeddingNet(scored.module.backbone, scored.module.head)
    trained.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()})
    x = torch.randn(2, 3, 112, 96)
    with torch.no_grad():
        assert torch.equal(scored.module(x), trained.eval().project(x))
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert (out / "csv" / "metrics.csv").is_file()
    summary = json.loads((out / "train_metrics.json").read_text())
    assert summary["epochs"] == 1 and summary["seconds"] > 0
    assert metrics["val/auc"] == pytest.approx(summary["val/auc"])

    second = cfg_factory("arch=mobilefacenet", "trainer.max_epochs=2", *FAST, "logger=csv", f"ckpt_path={last}", out="b")
    train(second)
    resumed = torch.load(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * ckpt["global_step"]


@pytest.mark.usefixtures("data_dir")
def test_margin_multirun(tmp_path, mfn_weights, monkeypatch):
    # The console entry point's own Hydra main, in-process (a subprocess would add ~9 s of imports; the
    # console-script boundary is covered by test_cli_error_is_one_line_without_traceback and the DDP test).
    import facematch.train

    argv = ["facematch-train", "-m", "margin=0.5,1.0", "arch=mobilefacenet", f"arch.weights={mfn_weights}",
            "trainer.fast_dev_run=true", "logger=csv", "test=false", *FAST, f"hydra.sweep.dir={tmp_path}/sweep"]
    monkeypatch.setattr(sys, "argv", argv)
    facematch.train.main()
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1"]
    for run, margin in zip(runs, (0.5, 1.0)):
        assert f"margin={margin}" in (run / ".hydra" / "overrides.yaml").read_text()
        assert f"\nmargin: {margin}\n" in (run / ".hydra" / "config.yaml").read_text()
        assert (run / "train_metrics.json").is_file()


def _ddp_pk_run(tmp_path, mfn_weights, name: str) -> list[list[dict]]:
    """A 2-process CPU DDP run (gloo) with P x K batches (batch-hard triplets), 2 epochs; what each rank's
    training batches held, as recorded by tests.helpers.RecordBatchLabels."""
    rec = tmp_path / name / "labels"
    r = run_cli(["-m", "facematch.train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "loss=triplet",
                 "miner=batch_hard", "trainer.max_epochs=2", "trainer.limit_val_batches=1", "evaluate=false",
                 "test=false", "logger=csv", "callbacks=none", *FAST,
                 "+callbacks.record._target_=tests.helpers.RecordBatchLabels", f"+callbacks.record.out_dir={rec}",
                 f"hydra.run.dir={tmp_path}/{name}"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "distributed_backend=gloo" in out and "All distributed processes registered. Starting with 2 processes" in out
    assert (tmp_path / name / "train_metrics.json").is_file()
    return [[json.loads(line) for line in (rec / f"labels_rank{k}.jsonl").read_text().splitlines()] for k in (0, 1)]


@pytest.mark.slow
@pytest.mark.usefixtures("data_dir")
def test_ddp_pk_batches_whole_on_every_rank(tmp_path, mfn_weights):
    """On each of 2 ranks every batch holds K=2 images of each of P=4 people; the ranks' batches of one step
    share nobody; epochs differ; a second run with the same seed receives exactly the same batches."""
    first = _ddp_pk_run(tmp_path, mfn_weights, "a")
    for rank0, rank1 in [first]:
        assert len(rank0) == len(rank1) == 4  # 2 epochs x max(8, 32) // (8 x 2) batches
        for b0, b1 in zip(rank0, rank1):
            assert (b0["epoch"], b0["step"]) == (b1["epoch"], b1["step"])
            for b in (b0, b1):
                counts = {c: b["labels"].count(c) for c in b["labels"]}
                assert len(counts) == 4 and set(counts.values()) == {2}, b
            assert not set(b0["labels"]) & set(b1["labels"])
        assert [b["labels"] for b in rank0 if b["epoch"] == 0] != [b["labels"] for b in rank0 if b["epoch"] == 1]
    assert _ddp_pk_run(tmp_path, mfn_weights, "b") == first


@pytest.mark.parametrize("args,needle", [
    (["data.test_fold=0", "data.pairs=/nonexistent/pairs.txt"], "pairs file not found: /nonexistent/pairs.txt"),
    (["ckpt_path=/nonexistent/last.ckpt"], "checkpoint not found: /nonexistent/last.ckpt"),
    (["data.preprocess.mode=sketchy"], "data.preprocess.mode='sketchy' is unknown"),
    (["loss=triplet", "miner=batch_hard", "data=pair_list"], "P x K batches (a miner) draw from the identity index"),
    (["data.test_fold=12"], "data.test_fold=12 is out of range"),
    (["data.root=/nonexistent/lfw"], "dataset root not found: /nonexistent/lfw. Set FACEMATCH_DATA_DIR"),
])
@pytest.mark.usefixtures("data_dir")
def test_bad_input_raises_user_error(cfg_factory, args, needle):
    cfg = cfg_factory("arch=mobilefacenet", *FAST, "logger=csv", *args)
    with pytest.raises(FacematchError) as err:
        train(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_error_is_one_line_without_traceback(tmp_path):
    # The console-script boundary: a user error is one "error:" line and exit 2 (the messages themselves are
    # checked in-process above). A missing checkpoint fails before Lightning is imported: about a second.
    r = run_cli(["-m", "facematch.train", "arch=mobilefacenet", "ckpt_path=/nonexistent/last.ckpt",
                 f"hydra.run.dir={tmp_path}/bad"])
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "checkpoint not found: /nonexistent/last.ckpt" in lines[0] and "ckpt_path=PATH" in lines[0]


@pytest.mark.usefixtures("data_dir")
def test_malformed_pairs_file_is_reported(cfg_factory, tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("10\t300\nAbel_Pacheco\t1\n")
    with pytest.raises(FacematchError, match="header promises"):
        train(cfg_factory("arch=mobilefacenet", *FAST, "data.test_fold=0", f"data.pairs={bad}"))
