"""Closed-set identification metrics as pure functions: a gallery/probe split, Rank-k, kNN.

Embeddings are compared by cosine similarity throughout. Labels may be any sortable values
(identity names or integer ids).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from facematch.eval.metrics import l2_normalize


def gallery_probe_split(labels, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(gallery_idx, probe_idx)``, both ascending int arrays of positions into ``labels``.

    Only identities with at least 2 images take part: each contributes exactly one gallery image,
    chosen uniformly with ``np.random.default_rng(seed)`` (identities visited in sorted order, so the
    choice depends only on ``labels`` and ``seed``), and all its other images are probes. Identities
    with a single image appear in neither.
    """
    y = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # positions grouped by identity, ascending within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gallery, probes = [], []
    for c in np.flatnonzero(counts >= 2):
        members = order[starts[c] : starts[c] + counts[c]]
        pick = int(rng.integers(members.size))
        gallery.append(members[pick])
        probes.extend(np.delete(members, pick).tolist())
    return np.sort(np.asarray(gallery, dtype=np.int64)), np.sort(np.asarray(probes, dtype=np.int64))


def _class_scores(gallery_emb, gallery_labels, probe_emb, chunk: int = 4096):
    """``(classes, scores)``: for every probe, the best cosine similarity to each gallery identity
    (the max over that identity's gallery images)."""
    g = l2_normalize(np.asarray(gallery_emb, dtype=np.float64))
    p = l2_normalize(np.asarray(probe_emb, dtype=np.float64))
    gl = np.asarray(gallery_labels).reshape(-1)
    if g.ndim != 2 or p.ndim != 2 or g.shape[1] != p.shape[1] or g.shape[0] != gl.size:
        raise ValueError(
            f"shape mismatch: gallery {g.shape}, {gl.size} gallery labels, probes {p.shape}"
        )
    classes, inverse = np.unique(gl, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(classes.size))
    out = np.empty((p.shape[0], classes.size), dtype=np.float64)
    for i in range(0, p.shape[0], chunk):
        sim = p[i : i + chunk] @ g[order].T
        out[i : i + chunk] = np.maximum.reduceat(sim, starts, axis=1)
    return classes, out


def rank_k_accuracy(
    gallery_emb, gallery_labels, probe_emb, probe_labels, ks: Sequence[int] = (1, 5)
) -> dict:
    """``{"rank_<k>": fraction of probes whose identity is among the k most similar gallery
    identities, ..., "n_probes", "n_gallery_identities"}``.

    Identities are ranked by their best gallery image (cosine). A probe's rank is the number of
    other identities scoring *strictly* higher than its own, so exact ties count in the probe's
    favour. Closed set: every probe identity must be in the gallery (else ``ValueError``).

    Written by hand rather than with ``sklearn.metrics.top_k_accuracy_score`` because that function
    switches to a thresholded binary rule when the probes happen to hold only two identities, warns
    when ``k >= n_identities``, and does not aggregate several gallery images per identity.
    """
    pl = np.asarray(probe_labels).reshape(-1)
    classes, scores = _class_scores(gallery_emb, gallery_labels, probe_emb)
    if scores.shape[0] != pl.size:
        raise ValueError(f"{scores.shape[0]} probe embeddings but {pl.size} probe labels")
    if pl.size == 0:
        raise ValueError("no probes")
    col = np.searchsorted(classes, pl)
    col_c = np.minimum(col, classes.size - 1)
    if not np.all(classes[col_c] == pl):
        missing = np.unique(pl[classes[col_c] != pl])[:5].tolist()
        raise ValueError(f"probe identities missing from the gallery (closed set), e.g. {missing}")
    own = scores[np.arange(pl.size), col_c]
    rank = (scores > own[:, None]).sum(axis=1)  # 0 = best
    out = {f"rank_{int(k)}": float(np.mean(rank < int(k))) for k in ks}
    out.update({"n_probes": int(pl.size), "n_gallery_identities": int(classes.size)})
    return out


def knn_accuracy(
    gallery_emb, gallery_labels, probe_emb, probe_labels, n_neighbors: int = 1
) -> dict:
    """``{"knn_accuracy", "n_neighbors"}``: accuracy of a uniform vote among the ``n_neighbors`` gallery
    embeddings nearest each probe (cosine, brute force; ties go to the smallest label, as scikit-learn's
    ``KNeighborsClassifier`` breaks them). ``n_neighbors`` is clipped to the gallery size (the value used is
    reported). scikit-learn's ``NearestNeighbors`` finds the neighbours; the vote is written here because
    ``KNeighborsClassifier`` treats a gallery of one image per identity as a likely regression target."""
    g = np.asarray(gallery_emb, dtype=np.float64)
    k = int(max(1, min(n_neighbors, g.shape[0])))
    classes, gallery_class = np.unique(np.asarray(gallery_labels).reshape(-1), return_inverse=True)
    idx = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(g).kneighbors(
        np.asarray(probe_emb, dtype=np.float64), return_distance=False)
    votes = np.apply_along_axis(np.bincount, 1, gallery_class[idx], minlength=classes.size)
    predicted = classes[votes.argmax(axis=1)]
    acc = np.mean(predicted == np.asarray(probe_labels).reshape(-1))
    return {"knn_accuracy": float(acc), "n_neighbors": k}


def identification_report(
    emb, labels, seed: int = 0, ks: Sequence[int] = (1, 5), n_neighbors: int = 1
) -> dict:
    """Split ``emb``/``labels`` with :func:`gallery_probe_split` and return the union of
    :func:`rank_k_accuracy` and :func:`knn_accuracy`, plus ``n_gallery`` and ``seed`` (the FaceNet
    reproduction's nearest-template accuracy is :func:`facematch.eval.template_pool.measure`'s)."""
    e = np.asarray(emb, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    gi, pi = gallery_probe_split(y, seed)
    if gi.size == 0:
        raise ValueError("no identity has 2 or more images; identification needs at least one")
    out = rank_k_accuracy(e[gi], y[gi], e[pi], y[pi], ks)
    out.update(knn_accuracy(e[gi], y[gi], e[pi], y[pi], n_neighbors))
    out.update({"n_gallery": int(gi.size), "seed": int(seed)})
    return out
