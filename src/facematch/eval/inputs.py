"""What the evaluation job scores with, from a composed ``eval`` / ``train`` config: the crops
(:func:`eval_source`) and the engine that embeds them (:func:`engine_settings`). facematch-eval, per-fold
scoring and calibration read both from here, so they score the same crops the same way."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from facematch.data.bin_set import is_bin
from facematch.data.identities import missing_root_error
from facematch.data.shards import is_url
from facematch.data.source import FaceSource, source_from_config
from facematch.embedding.engine import EngineSettings


def eval_source(cfg: DictConfig, template: str, *, degraded: bool = True) -> FaceSource:
    """The crops ``facematch-eval`` and per-fold scoring score for ``cfg.data`` (the same for both): raw
    photos are aligned with the ``align`` group's settings when ``embed.align_raw``; ``data.degrade``
    applies (draw 0) unless ``degraded`` is false (the original crops)."""
    root = str(cfg.data.root) if is_url(cfg.data.root) else Path(cfg.data.root)  # a packed set may be a URL
    if isinstance(root, Path) and not root.is_dir() and not is_bin(root):  # a .bin file is a set of its own
        raise missing_root_error(root)
    return source_from_config(root, template, cfg.data.get("preprocess"), align_raw=bool(cfg.embed.align_raw),
                              degrade=cfg.data.get("degrade") if degraded else None)


def engine_settings(cfg: DictConfig, progress: bool | None = None) -> EngineSettings:
    """The job's engine settings: the ``embed`` group, built once (``progress``: overrides ``embed.progress``)."""
    return EngineSettings.from_config(cfg.embed, **({} if progress is None else {"progress": bool(progress)}))
