"""Packed LFW (facematch-data pack, data=packed) against the folder tree on the real data: the same P x K
batches, the same metrics with the same seed, the pairs of a test fold served from the shards; the pack
and verify commands' error path is one ``error:`` line naming the shard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facematch.data.pack import pack
from facematch.train import train
from tests.helpers import FAST, error_line, run_cli


@pytest.fixture(scope="module")
def packed_aligned(data_dir, tmp_path_factory) -> Path:
    """lfw-aligned-112 (the 7,701 pairs.txt images) packed, as `facematch-data pack ... --prealigned` does."""
    out = tmp_path_factory.mktemp("packed") / "lfw-aligned-112"
    index = pack(data_dir / "lfw-aligned-112", out, prealigned="arcface_112x112", progress=False)
    assert index["count"] == 7701 and index["preprocess"] == {"mode": "prealigned", "template": "arcface_112x112"}
    return out


def _run(cfg_factory, tmp_path, name: str, data: list[str], mfn_weights) -> tuple[dict, list]:
    rec = tmp_path / name / "labels"
    cfg = cfg_factory(*data, "arch=mobilefacenet", f"arch.weights={mfn_weights}", "loss=triplet", "miner=batch_hard",
                      "data.features.enabled=false", "data.test_fold=0", "trainer.max_epochs=1",
                      "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "+trainer.limit_test_batches=2",
                      "evaluate=false", "logger=csv", "callbacks=none", *FAST,
                      "+callbacks.record._target_=tests.helpers.RecordBatchLabels", f"+callbacks.record.out_dir={rec}",
                      out=name)
    metrics = train(cfg)
    return metrics, [json.loads(line) for line in (rec / "labels_rank0.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_training_from_packed_lfw_matches_the_folder_tree(cfg_factory, tmp_path, packed_aligned, mfn_weights):
    """Decoded images (no feature cache), P x K batch-hard triplets, test fold 0: identical batches and metrics."""
    folder, folder_batches = _run(cfg_factory, tmp_path, "folder", ["data=lfw_aligned112"], mfn_weights)
    shards, shard_batches = _run(cfg_factory, tmp_path, "shards", ["data=packed", f"data.root={packed_aligned}"],
                                 mfn_weights)
    assert shard_batches == folder_batches and len(folder_batches) == 2
    for b in folder_batches:
        assert sorted({b["labels"].count(c) for c in b["labels"]}) == [2] and len(set(b["labels"])) == 4
    keys = [k for k in folder if k.startswith(("train/", "val/", "test/"))]
    assert "test/auc" in keys and "train/loss_epoch" in keys
    assert {k: shards[k] for k in keys} == {k: folder[k] for k in keys}


def test_pack_and_verify_cli_errors_name_the_shard(packed_aligned, tmp_path, data_dir):
    r = run_cli(["-m", "facematch.cli.data", "pack", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert r.returncode == 2 and "dataset folder not found" in error_line(r.stderr)

    r = run_cli(["-m", "facematch.cli.data", "verify", str(packed_aligned), "--pairs", str(data_dir / "lfw" / "pairs.txt"),
                 "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert "7701 images in 4 parts" in r.stdout and "0 image(s) of" in r.stdout

    broken = tmp_path / "broken"
    shutil.copytree(packed_aligned, broken)
    shard = broken / "part-00001" / "chunk-0-0.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    r = run_cli(["-m", "facematch.cli.data", "verify", str(broken), "--no-progress"])
    line = error_line(r.stderr)
    assert r.returncode == 2 and f"shard {shard} is 1000 bytes" in line and "facematch-data pack" in line
