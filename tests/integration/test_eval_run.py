"""facematch-eval end to end on a small real LFW subset: outputs, the embedding cache, both pairs formats,
raw photos aligned by the eval itself, checkpoints, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facematch.errors import FacematchError
from facematch.eval.job import evaluate
from tests.helpers import run_cli, tiny_pairs

REQUIRED = ("accuracy_mean", "accuracy_std", "fold_accuracies", "val_at_far_1e-3", "val_at_far_1e-2", "auc", "eer",
            "accuracy_at_threshold", "f1_at_threshold", "best_f1_threshold", "n_pairs", "seconds", "n_images",
            "embedding_cache_hit", "rank_1", "rank_5", "knn_accuracy", "model", "command", "overrides")


@pytest.fixture
def aligned_args(data_dir, mfn_weights, tmp_path):
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    return ["arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_aligned112",
            f"data.root={data_dir / 'lfw-aligned-112'}", f"data.pairs={pairs}", "embed.num_workers=0",
            f"embed.cache_dir={tmp_path / 'emb'}", "embed.progress=false", "eval.tsne_identities=4"]


def test_eval_writes_metrics_plots_tensorboard_then_hits_cache(cfg_factory, aligned_args, capsys, monkeypatch):
    cfg = cfg_factory(*aligned_args, config_name="eval", out="first")
    m = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert all(k in saved for k in REQUIRED), [k for k in REQUIRED if k not in saved]
    assert saved["n_pairs"] == 16 and len(saved["fold_accuracies"]) == 2 and saved["embedding_cache_hit"] is False
    assert saved["accuracy_mean"] == m["accuracy_mean"] and 0.5 <= m["accuracy_mean"] <= 1.0
    assert saved["auc"] > 0.9  # real weights on real pairs
    assert saved["model"]["weights_sha256"].startswith("e839247c") and saved["flip"] == "concat"
    assert saved["preprocess"] == "prealigned-arcface_112x112-sphereface_112x96"
    for png in ("roc.png", "f1_threshold.png", "score_histogram.png", "tsne.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    tb = out / "tensorboard"
    assert list(tb.rglob("events.out.tfevents.*")) and list(tb.rglob("projector_config.pbtxt"))
    table = capsys.readouterr().out
    assert "10-fold accuracy" in table and "VAL @ FAR 1e-3" in table

    # Second run: every embedding comes from the cache; the model must not run at all.
    from facematch.models.backbones.mobilefacenet import network_classes

    def boom(self, x):
        raise AssertionError("backbone forward called on a warm cache")

    monkeypatch.setattr(network_classes().MobileFaceNet, "forward", boom)
    again = evaluate(cfg_factory(*aligned_args, config_name="eval", out="second"))
    assert again["embedding_cache_hit"] is True and again["embedding_cache"]["computed"] == 0
    assert again["accuracy_mean"] == m["accuracy_mean"] and again["auc"] == m["auc"]


def test_pair_list_format_sum_flip_and_sq_l2(cfg_factory, data_dir, mfn_weights, tmp_path):
    from facematch.data.pair_files import read_lfw_pairs

    pairs = read_lfw_pairs(tiny_pairs(data_dir, tmp_path / "p.txt"))
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{p.a} {p.b} {int(p.same)}\n" for p in pairs))
    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_aligned112",
                      f"data.root={data_dir / 'lfw-aligned-112'}", f"data.pairs={lst}", "protocol.n_folds=2",
                      "protocol.flip=sum", "protocol.distance=sq_l2", "protocol.subtract_mean=false", "embed.cache=false",
                      "embed.num_workers=0", "embed.progress=false", "eval.plots=false", "eval.tensorboard=false",
                      "eval.identification=false", config_name="eval")
    m = evaluate(cfg)
    assert m["data"]["format"] == "list" and m["n_pairs"] == 16 and len(m["fold_accuracies"]) == 2
    assert m["distance"] == "sq_l2" and m["flip"] == "sum" and m["embedding_cache"]["key"] is None


def test_raw_photos_are_detected_and_aligned(cfg_factory, data_dir, mfn_weights, tmp_path):
    """data=lfw_photos (raw deep-funneled photos): the eval aligns them itself, through the aligned-crop cache."""
    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_photos",
                      f"data.root={data_dir / 'lfw' / 'lfw-deepfunneled'}",
                      f"data.pairs={tiny_pairs(data_dir, tmp_path / 'p.txt', per_class=1)}",
                      f"align.cache_dir={tmp_path / 'aligned'}", f"embed.cache_dir={tmp_path / 'emb'}",
                      "embed.num_workers=0", "embed.progress=false", "eval.tsne_identities=0", "eval.tensorboard=false",
                      "embed.precision=fp32", config_name="eval")
    m = evaluate(cfg)
    from facematch.data.pair_files import read_pairs

    n_distinct = len({p for pair in read_pairs(tmp_path / "p.txt") for p in (pair.a, pair.b)})
    assert m["preprocess"] == "align-sphereface_112x96" and m["n_images"] == n_distinct
    assert m["embedding_cache"]["key"].startswith("mobilefacenet-bd25aff18c68-align-sphereface_112x96-views2-fp32-")
    folders = list((tmp_path / "aligned").iterdir())  # one per template, detector settings and source folder
    assert len(folders) == 1 and folders[0].name.startswith("sphereface_112x96-")
    crops = sorted(folders[0].rglob("*.png"))
    assert len(crops) == n_distinct
    from PIL import Image

    with Image.open(crops[0]) as im:
        assert im.size == (96, 112)
    assert m["auc"] > 0.9


def test_checkpoint_is_scored_with_its_head(cfg_factory, aligned_args, mfn_weights, tmp_path):
    """A checkpoint as written before the module held an EmbeddingNet (bare keys, a backbone name and head
    settings), then as written now (``net.`` keys, the ``arch`` / ``head`` config nodes): the same weights,
    so the second is scored from the embedding cache the first filled."""
    from facematch.models.backbones import build_backbone
    from facematch.models.heads import LinearHead

    backbone, head = build_backbone("mobilefacenet", weights=str(mfn_weights)), LinearHead(128)
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    before, now = tmp_path / "before.ckpt", tmp_path / "now.ckpt"
    torch.save({"epoch": 0, "state_dict": state, "facematch": {"backbone": "mobilefacenet", "head": {}, "config": {}}},
               before)
    arch = {"_target_": "facematch.models.backbones.build_backbone", "name": "mobilefacenet",
            "weights": str(tmp_path / "moved-away.ckpt"), "pretrained": None, "freeze": True, "unfreeze_last": 0}
    head_node = {"_target_": "facematch.models.heads.LinearHead", "_partial_": True, "dim": None, "init": "identity",
                 "dropout": 0.0, "center": False}
    torch.save({"epoch": 0, "state_dict": {f"net.{k}": v for k, v in state.items()},
                "facematch": {"backbone": "mobilefacenet", "arch": arch, "head": head_node, "config": {}}}, now)
    scores = []
    for ckpt, out in ((before, "before"), (now, "now")):
        cfg = cfg_factory(*aligned_args, f"ckpt_path={ckpt}", "eval.plots=false", "eval.tensorboard=false",
                          config_name="eval", out=out)
        m = evaluate(cfg)
        assert m["model"]["kind"] == "checkpoint" and m["model"]["output"].startswith("head projection")
        assert m["auc"] > 0.9
        scores.append(m)
    assert scores[0]["model"]["state_dict_sha256"] == scores[1]["model"]["state_dict_sha256"]
    assert scores[1]["embedding_cache_hit"] is True and scores[1]["auc"] == scores[0]["auc"]


@pytest.mark.parametrize("override,needle", [
    ("data.pairs=/nonexistent/pairs.txt", "pairs file not found: /nonexistent/pairs.txt"),
    ("data.root=/nonexistent/lfw", "dataset root not found: /nonexistent/lfw"),
    ("protocol.flip=twice", "protocol.flip='twice' (choose none | sum | concat)"),
    ("protocol.distance=manhattan", "protocol.distance='manhattan' (choose cosine | sq_l2)"),
    ("protocol.fars=[0.001,2]", "protocol.fars=[0.001, 2.0] (rates in (0, 1))"),
    ("arch.weights=/nonexistent/w.ckpt", "weights file not found"),
])
def test_bad_input_is_a_one_line_user_error(cfg_factory, aligned_args, override, needle):
    with pytest.raises(FacematchError) as err:
        evaluate(cfg_factory(*aligned_args, override, config_name="eval"))
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_runs_and_records_its_overrides(aligned_args, tmp_path):
    r = run_cli(["-m", "facematch.eval.job", *aligned_args, "eval.plots=false", "eval.tensorboard=false",
                 f"hydra.run.dir={tmp_path / 'cli'}"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "10-fold accuracy" in r.stdout
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["overrides"][0] == "arch=mobilefacenet"



def test_entry_point_error_is_one_line_and_its_exit_code(cfg_factory, aligned_args, capsys):
    # what the facematch-eval entry point runs (run_or_exit), in-process: the subprocess above covers the
    # console-script boundary
    from facematch.errors import run_or_exit

    cfg = cfg_factory(*aligned_args, "arch.weights=/nonexistent/w.ckpt", config_name="eval")
    with pytest.raises(SystemExit) as e:
        run_or_exit(evaluate, cfg)
    err = capsys.readouterr().err
    assert e.value.code == 6 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: weights file not found: /nonexistent/w.ckpt (check arch.weights=PATH)"]


def test_default_precision_decides_every_pair_as_fp32_on_any_cpu(cfg_factory, aligned_args, monkeypatch):
    """Each path forced on this machine (embed.precision=fp32, embed.precision=bf16) and the default run as a
    CPU without native bf16 and as one with it would: the default is the fp32 path, recorded as what ran, with
    the same scores and per-pair decisions (pair_scores.tsv) on both; bf16 really ran (other scores)."""
    import csv

    from facematch.utils import hardware

    no_bf16, bf16_cpu = frozenset({"avx2", "fma"}), frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    runs = {}
    for name, flags, extra in (("fp32", bf16_cpu, ["embed.precision=fp32"]),
                               ("bf16", bf16_cpu, ["embed.precision=bf16"]),
                               ("default on a bf16 CPU", bf16_cpu, []), ("default elsewhere", no_bf16, [])):
        monkeypatch.setattr(hardware, "cpu_flags", lambda flags=flags: flags)
        cfg = cfg_factory(*aligned_args, *extra, "embed.cache=false", "eval.plots=false", "eval.tensorboard=false",
                          "eval.identification=false", config_name="eval", out=name.replace(" ", "_"))
        m = evaluate(cfg)
        with open(Path(cfg.paths.output_dir) / "pair_scores.tsv") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        decisions = [int(r["decision"]) for r in rows]
        for k, acc in zip((0, 1), m["fold_accuracies"]):  # the decisions are what the fold accuracies count
            fold = [d == int(r["same"]) for d, r in zip(decisions, rows) if int(r["fold"]) == k]
            assert sum(fold) / len(fold) == acc
        runs[name] = {"precision": m["precision"], "decisions": decisions, "folds": m["fold_accuracies"],
                      "cosine": [r["cosine"] for r in rows]}
    assert runs["fp32"]["precision"] == "fp32" and runs["bf16"]["precision"] == "bf16"
    assert runs["bf16"]["cosine"] != runs["fp32"]["cosine"]  # the bf16 path ran
    assert runs["default on a bf16 CPU"] == runs["default elsewhere"] == runs["fp32"]
