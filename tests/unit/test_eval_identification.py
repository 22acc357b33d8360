"""Tests for facematch.eval.identification (synthetic embeddings only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from facematch.eval import identification as I


def clustered(n_ids=20, noise=0.05, seed=0, counts=None):
    """Embeddings around one random unit centre per identity; identity i has counts[i] images."""
    rng = np.random.default_rng(seed)
    d = 32
    centres = rng.normal(size=(n_ids, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if counts is None:
        counts = rng.integers(1, 7, n_ids)
    labels = np.repeat(np.arange(n_ids), counts)
    emb = centres[labels] + rng.normal(scale=noise, size=(labels.size, d))
    perm = rng.permutation(labels.size)  # images of an identity are not contiguous
    return emb[perm], labels[perm]


def test_split_one_gallery_image_per_identity_with_two_or_more():
    labels = np.array(["a", "b", "a", "c", "d", "d", "d", "a", "e"])  # b, c, e have one image
    g, p = I.gallery_probe_split(labels, seed=0)
    assert sorted(labels[g].tolist()) == ["a", "d"]
    assert sorted(labels[p].tolist()) == ["a", "a", "d", "d"]
    assert set(g).isdisjoint(p)
    assert not set(labels[np.r_[g, p]]) & {"b", "c", "e"}


def test_split_on_random_labels_and_determinism():
    _, labels = clustered(n_ids=50, seed=1)
    g, p = I.gallery_probe_split(labels, seed=5)
    ids, counts = np.unique(labels, return_counts=True)
    multi = set(ids[counts >= 2].tolist())
    assert sorted(labels[g].tolist()) == sorted(multi)  # exactly one per multi-image identity
    assert set(labels[p].tolist()) == multi
    assert g.size + p.size == counts[counts >= 2].sum()
    assert len(set(g) | set(p)) == g.size + p.size
    g2, p2 = I.gallery_probe_split(labels, seed=5)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(p, p2)
    picks = {tuple(I.gallery_probe_split(labels, seed=s)[0]) for s in range(5)}
    assert len(picks) > 1  # the seed does choose


def test_rank1_and_knn_perfect_on_separated_clusters():
    emb, labels = clustered(noise=0.05)
    r = I.identification_report(emb, labels, seed=0, ks=(1, 5))
    assert r["rank_1"] == 1.0 and r["rank_5"] == 1.0 and r["knn_accuracy"] == 1.0
    json.dumps(r, allow_nan=False)


def test_rank_k_monotone_and_matches_sklearn_top_k():
    emb, labels = clustered(n_ids=30, noise=0.6, seed=3, counts=np.full(30, 4))
    g, p = I.gallery_probe_split(labels, seed=0)
    r = I.rank_k_accuracy(emb[g], labels[g], emb[p], labels[p], ks=(1, 5, 10))
    assert 0.0 < r["rank_1"] < 1.0  # non-trivial
    assert r["rank_1"] <= r["rank_5"] <= r["rank_10"]
    assert r["n_probes"] == p.size and r["n_gallery_identities"] == 30
    # one gallery image per identity: cosine to the gallery sorted by label are the class scores
    order = np.argsort(labels[g])
    gn = emb[g][order] / np.linalg.norm(emb[g][order], axis=1, keepdims=True)
    pn = emb[p] / np.linalg.norm(emb[p], axis=1, keepdims=True)
    sims = pn @ gn.T
    for k in (1, 5, 10):
        assert r[f"rank_{k}"] == pytest.approx(
            top_k_accuracy_score(labels[p], sims, k=k, labels=np.arange(30))
        )
    # kNN with k=1 on a one-image-per-identity gallery is rank-1
    assert I.knn_accuracy(emb[g], labels[g], emb[p], labels[p])["knn_accuracy"] == pytest.approx(r["rank_1"])


def test_rank_k_by_hand_with_several_gallery_images():
    # gallery: A at 0 deg and 90 deg, B at 45 deg. Probe labelled A at 80 deg: its best A image
    # (90 deg, cos 10) beats B (cos 35) -> rank 1. Probe labelled B at 85 deg: A wins -> rank 2.
    ang = np.deg2rad
    unit = lambda d: [np.cos(ang(d)), np.sin(ang(d))]  # noqa: E731
    gallery = np.array([unit(0), unit(90), unit(45)])
    r = I.rank_k_accuracy(gallery, ["A", "A", "B"], np.array([unit(80), unit(85)]), ["A", "B"], ks=(1, 2))
    assert r["rank_1"] == 0.5 and r["rank_2"] == 1.0


def test_open_set_probe_raises():
    with pytest.raises(ValueError, match="missing from the gallery"):
        I.rank_k_accuracy(np.eye(2), [0, 1], np.eye(2), [0, 7])


def test_knn_clips_neighbours_to_gallery_size():
    emb, labels = clustered(n_ids=3, counts=np.array([2, 2, 2]))
    g, p = I.gallery_probe_split(labels, seed=0)
    r = I.knn_accuracy(emb[g], labels[g], emb[p], labels[p], n_neighbors=10)
    assert r["n_neighbors"] == 3
