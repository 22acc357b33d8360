"""The mixed-quality pair plan (seeded, fixed) and the feature pass that embeds each distinct crop once."""

from __future__ import annotations

import types

import numpy as np

from facematch.data.degrade import Degradation
from facematch.quality import features
from facematch.quality.pairs import MixedSettings, plan, true_resolution


def test_plan_is_fixed_one_or_both_faces_within_range():
    a, b = plan(2000), plan(2000)
    assert np.array_equal(a, b) and not np.array_equal(a, plan(2000, MixedSettings(seed=34)))
    degraded = (a > 0).sum(axis=1)
    assert set(degraded.tolist()) == {1, 2} and 0.45 < np.mean(degraded == 2) < 0.55
    assert a[a > 0].min() >= 12 and a.max() <= 112 and np.all(a == np.round(a))
    assert np.array_equal(plan(10), a[:10])  # a pair's draw does not depend on how many pairs follow
    assert true_resolution(np.array([0.0, 16.0, 130.0]), 112).tolist() == [112.0, 16.0, 112.0]


def test_each_distinct_crop_is_embedded_once(monkeypatch):
    seen = []

    class Embedder:
        def __init__(self, *a, **k):
            pass

        def forward_views(self, crops):
            seen.extend(int(c[0, 0, 0]) for c in crops)
            return crops[:, :1, :1, 0].reshape(len(crops), 1, 1).astype(np.float32)

    class Source:
        key, root = "k", "/nonexistent"

        def __call__(self, rel):
            return np.full((8, 8, 3), int(rel), np.uint8)

    monkeypatch.setattr(features, "Embedder", Embedder)
    low = Degradation(resolution=(4.0, 4.0))
    specs = [("5", None, 0), ("7", low, 0), ("5", None, 0), ("9", None, 0), ("7", low, 0)]
    model = types.SimpleNamespace(fingerprint="f", module=None, spec=None)
    views = features.embed_specs(model, Source(), specs)
    assert views[:, 0, 0].tolist() == [5, 7, 5, 9, 7] and sorted(seen) == [5, 7, 9]
