"""Each plot writes a valid, non-trivial PNG atomically and returns its Figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from facematch.eval import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.5
    scores = np.clip(np.where(same, rng.normal(0.6, 0.15, 400), rng.normal(0.1, 0.15, 400)), -1, 1)
    return scores, same


def assert_png(path, min_bytes=5_000):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
        assert w > 200 and h > 200
        # not a blank canvas
        assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 10
    # atomic write leaves no temp file behind
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_roc_plot(tmp_path, pairs):
    fig = plots.roc_plot(*pairs, tmp_path / "roc.png", fars=(1e-3, 1e-2))
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_xscale() == "log"
    assert_png(tmp_path / "roc.png")


def test_f1_plot(tmp_path, pairs):
    fig = plots.f1_plot(*pairs, tmp_path / "sub" / "f1.png", threshold=0.6)
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "sub" / "f1.png")


def test_score_histogram(tmp_path, pairs):
    fig = plots.score_histogram(*pairs, tmp_path / "hist.png", threshold=0.6)
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "hist.png")


def test_tsne_plot_most_frequent_identities(tmp_path):
    rng = np.random.default_rng(0)
    counts = np.array([9, 8, 7, 6, 5, 2, 1])
    labels = np.repeat(np.array([f"id{i}" for i in range(7)]), counts)
    centres = rng.normal(size=(7, 16))[np.repeat(np.arange(7), counts)]
    emb = centres + rng.normal(scale=0.1, size=(counts.sum(), 16))
    assert plots.most_frequent_identities(labels, 3).tolist() == ["id0", "id1", "id2"]
    fig = plots.tsne_plot(emb, labels, n_identities=5, path=tmp_path / "tsne.png", seed=0)
    assert isinstance(fig, Figure)
    n_points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert n_points == 35  # the five most frequent identities only
    assert_png(tmp_path / "tsne.png")


def test_tsne_perplexity_clipped_to_sample_count(tmp_path):
    emb = np.random.default_rng(1).normal(size=(4, 8))
    plots.tsne_plot(emb, [0, 0, 1, 1], n_identities=2, path=tmp_path / "small.png", seed=0, perplexity=30)
    assert_png(tmp_path / "small.png", min_bytes=2_000)
