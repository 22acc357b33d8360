"""Sharded evaluation: the distinct images of one evaluation job embedded across the ranks of a process group.

When ``torch.distributed`` is initialised with more than one rank (``torchrun``, or a distributed
training run's per-fold scoring), :func:`embed_views_sharded` gives each rank every ``world``-th batch of
the distinct images (batch ``b`` of ``batch_size`` images to rank ``b % world``, so each batch is the one a
single process would run), gathers the per-view model outputs with ``all_gather_object`` and reassembles
them in the original order on every rank; the tail and flip combination and the scoring then run on the
whole set on every rank, exactly as in one process. With no process group or one rank nothing changes.

Only rank 0 merges the embedding cache's parts (every rank writes its own uniquely named parts atomically).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

SUMMED = ("computed", "cache_hits", "stale", "old_format")


def distributed() -> tuple[int, int] | None:
    """``(rank, world_size)`` when a process group of more than one rank is initialised, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def is_rank_zero() -> bool:
    info = distributed()
    return info is None or info[0] == 0


def shard(rels: Sequence[str], rank: int, world: int, block: int) -> list[str]:
    """Rank ``rank``'s share: the blocks ``rank, rank + world, ...`` of ``block`` consecutive items."""
    block = max(1, int(block))
    return [r for i, r in enumerate(rels) if (i // block) % world == rank]


def embed_views_sharded(embedder, rels: Sequence[str]) -> tuple[np.ndarray, list[str], dict]:
    """``(views (N, V, D), paths, stats)`` of the distinct ``rels``, computed across the ranks (see the
    module docstring); ``stats`` sums ``computed`` / ``cache_hits`` over the ranks and lists each rank's
    share under ``per_rank``. Without a process group of 2+ ranks: ``embedder.embed_views`` unchanged."""
    info = distributed()
    if info is None:
        views, paths = embedder.embed_views(rels)
        return views, paths, dict(embedder.stats)
    import torch.distributed as dist

    rank, world = info
    paths = list(dict.fromkeys(rels))
    embedder.merge_cache = rank == 0  # two ranks merging the same folder at once would only duplicate work
    mine_views, mine = embedder.embed_views(shard(paths, rank, world, embedder.batch_size))
    local = dict(embedder.stats)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (mine, mine_views, local))
    by_path: dict[str, np.ndarray] = {}
    for got_paths, got_views, _ in gathered:
        by_path.update(zip(got_paths, got_views))
    missing = [p for p in paths if p not in by_path]
    if missing:  # a rank-sharding bug, never the user's
        raise RuntimeError(f"sharded embedding lost {len(missing)} images (e.g. {missing[0]})")
    views = (np.stack([by_path[p] for p in paths]).astype(np.float32, copy=False) if paths
             else np.zeros((0, embedder.views, 0), np.float32))
    per_rank = [{"rank": r, "n_images": s.get("n_images", 0), "computed": s.get("computed", 0),
                 "cache_hits": s.get("cache_hits", 0), "seconds": s.get("seconds", 0.0)}
                for r, (_, _, s) in enumerate(gathered)]
    stats = {**local, **{k: sum(int(s.get(k, 0)) for _, _, s in gathered) for k in SUMMED},
             "n_images": len(paths), "cache_hit": bool(paths) and all(
                 s.get("computed", 0) == 0 for _, _, s in gathered),
             "seconds": max(s.get("seconds", 0.0) for _, _, s in gathered),
             "world_size": world, "rank": rank, "per_rank": per_rank}
    stats.pop("images_per_s", None)
    return views, paths, stats


@contextlib.contextmanager
def process_group_from_env(device: str | None = "auto") -> Iterator[tuple[int, int] | None]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): a process group for the block (nccl when the embedder runs
    on CUDA, with this rank on GPU ``LOCAL_RANK``; gloo on the CPU), destroyed at its end. Yields
    ``(rank, world)``, or None outside torchrun (nothing is done) or when a group exists already (kept)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or not dist.is_available() or dist.is_initialized():
        yield distributed()
        return
    from facematch.utils.hardware import resolve_device

    cuda = resolve_device(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        log.info("sharded evaluation: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), dist.get_backend())
        yield distributed()
    finally:
        dist.destroy_process_group()
