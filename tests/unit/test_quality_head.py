"""The learned quality score's target (CR-FIQA's certainty ratio), its head, and the stored document."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

from facematch.errors import FacematchError
from facematch.quality import store
from facematch.quality.head import EPS, FitSettings, QualityHead, certainty_ratio, class_centres, fit_head


def test_certainty_ratio_hand_checked():
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    f = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])  # unit: (0.6, 0.8, 0); (0, 0, -1)
    cr = certainty_ratio(f, torch.tensor([0, 2]), centres)
    # face 0 of class 0: own cos 0.6, nearest other 0.8 -> 0.6 / 1.8; face 1 of class 2: -1 / (0 + 1)
    assert cr.tolist() == pytest.approx([0.6 / (1.8 + EPS), -1.0 / (1.0 + EPS)])
    # nearer its own centre than to any other: higher ratio
    assert certainty_ratio(torch.tensor([[0.8, 0.6, 0.0]]), torch.tensor([0]), centres) > cr[0]
    with pytest.raises(ValueError):
        certainty_ratio(f, torch.tensor([0, 0]), centres[:1])


def test_class_centres_are_unit_means_of_unit_features():
    f = torch.tensor([[2.0, 0.0], [0.0, 5.0], [0.0, -1.0]])
    c = class_centres(f, torch.tensor([0, 0, 1]), 2)
    assert c[0].tolist() == pytest.approx([2 ** -0.5, 2 ** -0.5]) and c[1].tolist() == pytest.approx([0.0, -1.0])


def synthetic_features(n=600, d=16, seed=0):
    """Features whose quality (the target) is the cosine to a fixed direction, times a random norm."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    target = x[:, 0].copy()
    return x * rng.uniform(1.0, 5.0, (n, 1)).astype(np.float32), target


def test_fit_head_learns_a_synthetic_target_and_is_seeded():
    x, y = synthetic_features()
    settings = FitSettings(hidden=16, epochs=30, seed=3)
    head = fit_head(x[:500], y[:500], settings)
    pred = head.score(x[500:])
    assert np.corrcoef(pred, y[500:])[0, 1] > 0.9  # held-out rows
    again = fit_head(x[:500], y[:500], settings)
    assert np.array_equal(again.score(x[500:]), pred)
    other = fit_head(x[:500], y[:500], FitSettings(hidden=16, epochs=30, seed=4))
    assert not np.array_equal(other.score(x[500:]), pred)


def test_head_round_trips_through_its_document(tmp_path, monkeypatch):
    x, y = synthetic_features(200, 8)
    head = fit_head(x, y, FitSettings(hidden=4, epochs=2))
    qm = store.QualityModel("ab" * 32, head, 0.25, "rule", data={"fold_excluded": 0})
    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path))
    path = store.write_quality(qm)
    back = store.read_quality(path)
    assert back.threshold == 0.25 and np.allclose(back.head.score(x), head.score(x), atol=1e-6)
    s = back.scores(x)
    assert np.allclose(s["norm"], np.linalg.norm(x, axis=1))
    model = types.SimpleNamespace(fingerprint="ab" * 32, description={})
    found, notes = store.find_quality(model)
    assert found is not None and found.origin == str(path)
    assert store.find_quality(types.SimpleNamespace(fingerprint="cd" * 32, description={}))[0] is None


def test_malformed_document_is_one_error(tmp_path):
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps({"format": store.FORMAT, "fingerprint": "x", "threshold": "high", "head": {}}))
    with pytest.raises(FacematchError, match="malformed quality document"):
        store.read_quality(bad)
    bad.write_text(json.dumps({"format": store.FORMAT, "fingerprint": "x", "threshold": 0.1, "head": {"dim": 2}}))
    with pytest.raises(FacematchError, match="quality head cannot be read"):
        store.read_quality(bad)
    assert QualityHead(4, 2).as_dict()["dim"] == 4
