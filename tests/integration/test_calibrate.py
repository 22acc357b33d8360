"""facematch-calibrate on real LFW pairs: the operating points, where they are stored, and that
facematch-compare then uses them by default."""

from __future__ import annotations

import json

import pytest
import torch

from facematch.cli.calibrate import main as calibrate
from facematch.cli.compare import main as compare
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead
from facematch.models.loading import load_checkpoint_model
from facematch.utils.io import sha256_file
from tests.helpers import mini_pairs

ALIGNED = ["--data", "lfw_aligned112", "--far", "0.1", "--precision", "fp32"]
A, B = "George_W_Bush/George_W_Bush_0007.jpg", "George_W_Bush/George_W_Bush_0016.jpg"


@pytest.fixture
def pairs(data_dir, tmp_path):
    return str(mini_pairs(data_dir, tmp_path / "pairs.txt", per_fold=6))


def test_bare_weights_into_calibration_dir(pairs, mfn_weights, lfw_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path / "cals"))
    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    assert calibrate(["--weights", str(mfn_weights), "--pairs", pairs, *ALIGNED, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stored = tmp_path / "cals" / f"{sha256_file(mfn_weights)}.json"
    assert doc["stored"] == str(stored) and doc["default"] == "far_1e-1"
    assert set(doc["points"]) == {"far_1e-1", "best_accuracy", "open_set_far_1e-1"} and doc["data"]["n_pairs"] == 24
    assert doc["search_default"] == "open_set_far_1e-1" and doc["points"]["open_set_far_1e-1"]["gallery_size"] > 1
    p = doc["points"]["far_1e-1"]
    assert p["far"] <= 0.1 and p["n_different"] == 12 and p["n_same"] == 12
    # compare now takes this calibration (the calibration dir comes before the shipped one)
    assert compare([str(lfw_root / A), str(lfw_root / B), "--weights", str(mfn_weights), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["threshold"] == pytest.approx(p["threshold"], abs=1e-6) and r["operating_point"] == "far_1e-1"
    assert compare([str(lfw_root / A), str(lfw_root / B), "--weights", str(mfn_weights), "--json",
                    "--operating-point", "best_accuracy"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["threshold"] == pytest.approx(doc["points"]["best_accuracy"]["threshold"], abs=1e-6)


def test_checkpoint_holds_its_calibration(pairs, mfn_weights, lfw_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    backbone = build_backbone("mobilefacenet", weights=str(mfn_weights))
    head = LinearHead(128, dim=128, init="identity")
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 1, "state_dict": state,
                "facematch": {"arch": {"name": "mobilefacenet"}, "head": {"dim": 128, "init": "identity"}}}, ckpt)
    assert load_checkpoint_model(ckpt).calibration is None
    assert calibrate(["--ckpt", str(ckpt), "--pairs", pairs, *ALIGNED]) == 0
    out = capsys.readouterr().out
    assert f"stored: {ckpt}" in out and "* far_1e-1" in out
    m = load_checkpoint_model(ckpt)
    assert m.calibration["fingerprint"] == m.fingerprint
    assert torch.equal(torch.load(ckpt, weights_only=True)["state_dict"]["head.proj.weight"], state["head.proj.weight"])
    assert compare([str(lfw_root / A), str(lfw_root / B), "--ckpt", str(ckpt), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["threshold_source"] == "calibration"
    assert r["threshold"] == pytest.approx(m.calibration["points"]["far_1e-1"]["threshold"], abs=1e-6)


def test_bad_far_is_one_line(mfn_weights, capsys):
    with pytest.raises(SystemExit) as e:
        calibrate(["--weights", str(mfn_weights), "--far", "2"])
    assert e.value.code == 2 and "error: --far 2 is not a rate in (0, 1)" in capsys.readouterr().err
