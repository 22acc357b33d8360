"""The embedding cache on its own (no model, no data): entries without source stamps, a damaged part,
merging parts."""

from __future__ import annotations

import numpy as np

from facematch.embedding.cache import EmbeddingCache


def test_in_memory_entries_need_no_source(tmp_path):
    c = EmbeddingCache(tmp_path, "k")
    c.add(["a", "b"], np.ones((2, 3)))  # no stamps: a source without files
    assert sorted(c.load()) == ["a", "b"]
    assert c.load(tmp_path) == {} and c.stats["stale"] == 2  # under a root they cannot be checked


def test_damaged_cache_part_is_ignored(tmp_path):
    c = EmbeddingCache(tmp_path, "k")
    c.add(["a", "b"], np.ones((2, 3)))
    (c.dir / "part-99999999999999999999-bad.npz").write_bytes(b"not a zip")
    assert sorted(c.load()) == ["a", "b"]
    c.add(["c"], np.zeros((1, 3)), stamps=[(5, 7)])
    c.merge()
    assert len(c.parts()) == 1 and sorted(c.load()) == ["a", "b", "c"]
    assert c.entries()[0]["c"][1] == (5, 7)  # merging keeps each entry's source stamp
