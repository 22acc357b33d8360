"""Operating points on hand-checked synthetic scores, and how a calibration is stored and found."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

from facematch.errors import FacematchError
from facematch.calibration.compute import far_point_name, operating_points, rates_at
from facematch.calibration import store
from facematch.calibration.store import Calibration, find_calibration, read_calibration, write_into_checkpoint, write_sidecar


def test_operating_points_hand_checked():
    # 4 same pairs, 5 different pairs; the highest different score is 0.5, the next 0.3
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    scores = np.array([0.9, 0.8, 0.45, 0.2, 0.5, 0.3, 0.1, 0.0, -0.2])
    pts = operating_points(scores, same, fars=(0.2, 0.01))
    # FAR budget 0.2 of 5 different pairs = 1 false accept: the lowest threshold accepting only 0.5
    p = pts[far_point_name(0.2)]
    assert p["threshold"] == pytest.approx(0.45) and p["far"] == pytest.approx(0.2) and p["tar"] == pytest.approx(0.75)
    # FAR budget 0.01 = no false accept: the threshold sits above 0.5, so only 0.9 and 0.8 pass
    p = pts[far_point_name(0.01)]
    assert 0.5 < p["threshold"] <= 0.8 and p["far"] == 0.0 and p["tar"] == pytest.approx(0.5)
    b = pts["best_accuracy"]
    assert b["accuracy"] == pytest.approx(max(rates_at(scores, same, t)["accuracy"] for t in scores))
    assert all(q["n_same"] == 4 and q["n_different"] == 5 for q in pts.values())


def _cal(fp="ab" * 32, default="far_1e-3"):
    return Calibration(fp, {"far_1e-3": {"threshold": 0.37, "far": 0.001, "tar": 0.97, "accuracy": 0.98},
                            "best_accuracy": {"threshold": 0.28, "far": 0.006, "tar": 0.99, "accuracy": 0.99}},
                       default, {"arch": "mobilefacenet", "flip": "concat"}, {"pairs": "/d/lfw/pairs.txt"})


def _model(fp, calibration=None, weights=None, kind="backbone"):
    spec = types.SimpleNamespace(name="mobilefacenet")
    return types.SimpleNamespace(fingerprint=fp, calibration=calibration, spec=spec,
                                 description={"kind": kind, "weights": weights})


def test_round_trip_and_describe(tmp_path):
    cal = _cal()
    path = write_sidecar(cal, tmp_path / "c.json")
    back = read_calibration(path)
    assert back.threshold() == 0.37 and back.threshold("best_accuracy") == 0.28
    assert "FAR 0.0010" in back.describe() and "pairs.txt" in back.describe()
    assert back.mismatch({"arch": "mobilefacenet", "flip": "none"}) and not back.mismatch({"flip": "concat"})
    with pytest.raises(ValueError):
        Calibration("x", {"a": {"threshold": 1}}, "b")
    with pytest.raises(FacematchError, match="operating point"):
        back.point("far_1e-9")


def test_find_by_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path / "cals"))
    monkeypatch.setattr(store, "SHIPPED_DIR", tmp_path / "shipped")
    fp = "cd" * 32
    assert find_calibration(_model(fp))[0] is None
    write_sidecar(_cal(fp))  # into the calibration dir, keyed by the fingerprint
    assert (tmp_path / "cals" / f"{fp}.json").is_file()
    assert find_calibration(_model(fp))[0].threshold() == 0.37
    # a sidecar beside the weights that calibrated other weights is passed over, with a note
    weights = tmp_path / "w.ckpt"
    weights.write_bytes(b"w")
    write_sidecar(_cal("ee" * 32), store.sidecar_path(weights))
    cal, notes = find_calibration(_model(fp, weights=str(weights)))
    assert cal.origin.endswith(f"{fp}.json") and any("other weights" in n for n in notes)
    # one stored in the model file wins
    inside = _cal(fp).as_dict() | {"default": "best_accuracy"}
    assert find_calibration(_model(fp, calibration=inside))[0].threshold() == 0.28
    # a corrupt file is a note, not a crash
    (tmp_path / "cals" / f"{fp}.json").write_text("{not json")
    cal, notes = find_calibration(_model(fp))
    assert cal is None and "is not valid JSON" in notes[0]


def test_write_into_checkpoint(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"net.w": torch.ones(2)}, "facematch": {"arch": {"name": "mobilefacenet"}}}, ckpt)
    write_into_checkpoint(ckpt, _cal())
    back = torch.load(ckpt, weights_only=True)
    assert back["facematch"]["calibration"]["points"]["far_1e-3"]["threshold"] == 0.37
    assert torch.equal(back["state_dict"]["net.w"], torch.ones(2))
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(FacematchError, match="not a facematch-train checkpoint"):
        write_into_checkpoint(tmp_path / "plain.ckpt", _cal())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(FacematchError, match="not a facematch-calibration"):
        read_calibration(bad)


def test_open_set_points_on_a_tiny_gallery():
    from facematch.calibration.compute import open_set_points, open_set_split

    # ann and bob have two images (gallery: the first by path), cy and dee one each (impostors)
    paths = ["bob/2.jpg", "ann/1.jpg", "cy/1.jpg", "ann/2.jpg", "bob/1.jpg", "dee/1.jpg"]
    labels = [p.split("/")[0] for p in paths]
    g, k, imp = open_set_split(labels, paths)
    assert [paths[i] for i in g] == ["ann/1.jpg", "bob/1.jpg"] and [paths[i] for i in k] == ["ann/2.jpg", "bob/2.jpg"]
    assert sorted(paths[i] for i in imp) == ["cy/1.jpg", "dee/1.jpg"]
    e = {"ann/1.jpg": [1, 0, 0], "ann/2.jpg": [0.9, 0.1, 0], "bob/1.jpg": [0, 1, 0], "bob/2.jpg": [0.1, 0.8, 0.2],
         "cy/1.jpg": [0.5, 0.5, 0.7], "dee/1.jpg": [0, 0.2, 1]}
    pts = open_set_points(np.array([e[p] for p in paths], float), labels, paths, fars=(0.4,))
    p = pts["open_set_far_4e-1"]
    cy_top = 0.5 / np.linalg.norm([0.5, 0.5, 0.7])  # the highest impostor score: must not pass
    assert p["threshold"] == pytest.approx(cy_top, abs=1e-6) and p["far"] == 0.0 and p["gallery_size"] == 2 and p["rank_1"] == 1.0
    assert p["tar"] == 1.0  # both known probes score above cy's best match


def test_a_search_uses_the_1_to_n_point(tmp_path, monkeypatch):
    import argparse

    from facematch.app.model_args import decision_threshold

    fp = "ab" * 32
    cal = _cal(fp)
    cal.points["open_set_far_1e-3"] = {"rule": "open_set", "threshold": 0.63, "far": 0.0007, "tar": 0.57,
                                       "gallery_size": 1559}
    cal.search_default = "open_set_far_1e-3"
    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path))
    write_sidecar(cal)
    args = argparse.Namespace(threshold=None, operating_point=None)
    settings = {"arch": "mobilefacenet", "flip": "concat"}
    assert decision_threshold(args, _model(fp), settings)["threshold"] == 0.37
    d = decision_threshold(args, _model(fp), settings, search=True)
    assert d["threshold"] == 0.63 and "gallery of 1559 people" in d["text"] and "DIR 0.5700" in d["text"]
    args.operating_point = "best_accuracy"
    assert decision_threshold(args, _model(fp), settings, search=True)["threshold"] == 0.28
