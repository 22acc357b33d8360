"""The cross-quality protocol (:mod:`facematch.eval.cross_quality`) inside the evaluation job and per-fold
scoring: which figures each records, and the full-resolution teacher that embeds the gallery side.

- ``facematch-eval`` with ``data.degrade.side=second``: the job's figures (``accuracy_mean``, the pair scores,
  the plots) are the cross-quality ones; ``metrics.json`` also holds ``symmetric_accuracy_*`` (both images
  degraded) and ``undegraded_accuracy_*`` (neither) of the same model, and ``cross_quality`` (what was done).
- per-fold scoring (``facematch-train`` with ``data.degrade``): fold k is scored as before (the symmetric
  protocol, and undegraded) and also cross-quality with the trained model on both sides (``cross``) and with
  the teacher on the gallery side (``cross_teacher``; the teacher's own undegraded figure:
  ``teacher_undegraded``). ``data.degrade.side=second`` makes the cross figure the fold's main result.

The teacher is the distillation teacher (``data.teacher``: its ``arch`` or ``ckpt_path``) when the run has
one, otherwise the run's ``arch`` as configured (the pretrained backbone it fine-tunes).
"""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from facematch.data.degrade import degrade_side
from facematch.data.pair_files import Pair
from facematch.eval.cross_quality import cross_figures, flat
from facematch.eval.verification import Protocol, Verification, verify
from facematch.models.loading import load_model

#: What a cross-quality result says it did (recorded beside its figures).
DESCRIPTION = {"degraded": "the second image of each pair (data.degrade, draw 0); the first undegraded",
               "mean": "per side: each side's own mean over the training folds' pairs"}


def side(cfg: DictConfig) -> str:
    return degrade_side(_plain(cfg.data.get("degrade")))


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def teacher_model(cfg: DictConfig):
    """The full-resolution model of the gallery side: ``data.teacher``'s, else the run's ``arch``."""
    teacher = cfg.data.get("teacher")
    if teacher is not None:
        return load_model(teacher.get("ckpt_path") or None, _plain(teacher.get("arch")) or _plain(cfg.arch))
    return load_model(None, _plain(cfg.arch))


def eval_cross(pairs: Sequence[Pair], degraded: Verification, clean_source, model, protocol: Protocol,
               engine: dict, what: str) -> tuple[Verification, dict]:
    """``facematch-eval`` with ``data.degrade.side=second``: (the cross-quality result, the extra metrics)."""
    clean = verify(model, pairs, clean_source, protocol, engine, what=what)
    cross, figures = cross_figures(pairs, degraded, clean, protocol)
    cross.embed_stats, cross.ran = degraded.embed_stats, degraded.ran  # how the probe side was embedded
    return cross, {**flat(figures), "cross_quality": DESCRIPTION}


def fold_cross(cfg: DictConfig, pairs: Sequence[Pair], degraded: Verification, clean: Verification,
               clean_source_for, protocol: Protocol, engine: dict, fold: int) -> dict:
    """Fold ``fold``'s cross-quality results (``cross``, ``cross_teacher``, ``teacher_undegraded``,
    ``symmetric``); with ``data.degrade.side=second``, also the cross result as the fold's main keys.
    ``clean_source_for(template)``: the undegraded crops in a model's template."""
    teacher = teacher_model(cfg)
    taught = verify(teacher, pairs, clean_source_for(teacher.spec.template), protocol, engine, what=str(cfg.data.pairs))
    cross, figures = cross_figures(pairs, degraded, clean, protocol, fold=fold, teacher=taught)
    figures.pop("undegraded")  # per-fold scoring records it already
    out = {**figures, "cross_quality": DESCRIPTION}
    if side(cfg) == "second":
        out.update(cross.fold(fold))
    return out
