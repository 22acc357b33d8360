"""The nearest-neighbour index of a gallery: faiss over unit-norm embeddings, inner product = cosine.

Why faiss rather than a numpy ``queries @ gallery.T``: the exact index (``flat``, ``IndexFlatIP``) is the
same product, but blocked, multi-threaded and with a heap top-k instead of a full sort, and the same
interface gives approximate indexes for galleries of 10^5-10^6 faces where even a fast exact scan costs
milliseconds per query (``benchmarks/gallery_search.py`` measures both against numpy in one run):

- ``flat``: exact inner product (the default; returns exactly what brute force returns);
- ``hnsw``: ``IndexHNSWFlat`` with inner product (graph search: no training, sub-millisecond queries at
  10^6, recall slightly under 1, tuned by ``ef_search``);
- ``ivf``: ``IndexIVFFlat`` with inner product (k-means cells; trained on the gallery itself, ``nprobe``
  cells searched per query). Below :data:`IVF_MIN_VECTORS` vectors there is too little to train the cells
  on and the exact index is used instead.
"""

from __future__ import annotations

import math

import numpy as np

from facematch.errors import FacematchError

INDEX_KINDS = ("flat", "hnsw", "ivf")
#: HNSW graph degree, construction and search beam widths (faiss' defaults are 32 / 40 / 16; a wider
#: search beam keeps recall near 1 on face embeddings, measured in benchmarks/gallery_search.py).
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
#: An IVF index needs ~39 training vectors per cell; smaller galleries get the exact index.
IVF_MIN_VECTORS = 4096


def check_kind(kind: str) -> str:
    if kind not in INDEX_KINDS:
        raise FacematchError(f"unknown index '{kind}'; choose one of: {', '.join(INDEX_KINDS)}")
    return kind


def _float32_rows(x, dim: int | None = None) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"expected (N, {dim or 'D'}) vectors, got shape {x.shape}")
    return x


class VectorIndex:
    """``VectorIndex(vectors, kind)``: an index of (N, D) float32 unit vectors; :meth:`search` returns
    the ``k`` largest inner products per query and their row numbers, best first (``-1`` / ``-inf`` pad
    the rows when ``k > N``)."""

    def __init__(self, vectors, kind: str = "flat", *, ef_search: int = HNSW_EF_SEARCH, nprobe: int | None = None):
        import faiss

        self.kind = check_kind(kind)
        x = _float32_rows(vectors)
        self.size, self.dim = int(x.shape[0]), int(x.shape[1])
        if kind == "ivf" and self.size < IVF_MIN_VECTORS:
            self.kind = "flat"  # too few vectors to train the cells on: exact search is fast at this size anyway
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = int(ef_search)
        elif self.kind == "ivf":
            nlist = int(min(4 * math.sqrt(self.size), self.size // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            train = x if self.size <= 256 * nlist else x[rng.choice(self.size, 256 * nlist, replace=False)]
            index.train(train)
            index.nprobe = int(nprobe or max(8, nlist // 16))
        else:
            index = faiss.IndexFlatIP(self.dim)
        if self.size:
            index.add(x)
        self.index = index

    def __len__(self) -> int:
        return self.size

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(sims (Q, k) float32, ids (Q, k) int64)`` of the ``k`` best rows per query, best first."""
        q = _float32_rows(queries, self.dim)
        k = int(k)
        if k <= 0 or q.shape[0] == 0:
            return np.zeros((q.shape[0], max(k, 0)), np.float32), np.zeros((q.shape[0], max(k, 0)), np.int64)
        if self.size == 0:
            return np.full((q.shape[0], k), -np.inf, np.float32), np.full((q.shape[0], k), -1, np.int64)
        sims, ids = self.index.search(q, k)
        sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
        return sims, ids.astype(np.int64)
