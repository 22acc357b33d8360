"""Report rows as a type: :class:`Row` (one table row: its configuration columns, its figures, where it came
from) gathered from run folders by :func:`collect`; per-fold training jobs (:class:`FoldJob`) combined into one
row by :func:`combine_folds`. :meth:`Row.as_dict` is the row as ``facematch-report --json`` writes it and the
tables (:mod:`facematch.report.table`) read it.

Two kinds of result are read:
- an evaluation run (``facematch-eval``): its 10-fold figures are used as they are;
- a per-fold training multirun (``facematch-train -m data.test_fold=0,...,9 ...``): job k trained on the
  people outside fold k and scored fold k only (``fold`` / ``fold_accuracy`` / ``fold_scores`` in its
  metrics.json). The ten jobs of one configuration are combined into one row: accuracy mean ± std over
  the folds, and VAL@FAR, F1 and accuracy at the fixed threshold on the pooled fold scores, each pair
  scored by the model that never saw its people.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from facematch.errors import FacematchError
from facematch.eval.cross_quality import combine_fold_figures
from facematch.eval.metrics import score_metrics
from facematch.report.describe import describe
from facematch.report.published import for_config
from facematch.report.runs import machine, training_budget


@dataclass(frozen=True)
class FoldJob:
    """One per-fold training job: its metrics.json and what its config and folder add."""

    metrics: dict
    threshold: float = 0.6  # the fixed cosine threshold it was scored at (protocol.threshold)
    published: dict | None = None  # the published figures its config names (facematch.report.published)
    machine: dict | None = None  # the machine it ran on
    images_seen: int | None = None  # training images drawn (per epoch x epochs run)
    val_auc: list[float] | None = None  # its learning curve (validation AUC per epoch)


@dataclass
class Row:
    """One table row: the configuration columns (:func:`facematch.report.describe.describe`), the figures (an
    evaluation's metrics, or :func:`combine_folds` of per-fold jobs), the folder it came from, and the
    published figures and machine beside it."""

    columns: dict[str, str]
    figures: dict[str, Any]
    path: str
    published: dict | None = None
    machine: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The row as ``--json`` writes it: the figures, the configuration columns over same-named metrics keys
        (an evaluation's ``data`` block), ``_path``, and ``published`` / ``machine`` where known."""
        row = {**self.figures, **self.columns, **self.extra, "_path": self.path}
        if self.published is not None:
            row["published"] = self.published
        if self.machine is not None:
            row["machine"] = self.machine
        return row


def load_run(metrics_path: Path) -> tuple[dict, dict] | None:
    """``(saved config, metrics)`` of the run whose metrics.json is ``metrics_path``; None without a config."""
    cfg_path = metrics_path.parent / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    return cfg, metrics


def template_means(templates: list[dict]) -> dict:
    """The FaceNet rows' nearest-template Rank-1 / Rank-5, each averaged over the folds, when every fold has
    them (no half-made means)."""
    keys = ("template_rank_1", "template_rank_5")
    if not templates or not all(all(k in t for k in keys) for t in templates):
        return {}
    return {k: float(np.mean([t[k] for t in templates])) for k in keys}


def combine_folds(fold_jobs: Sequence[FoldJob]) -> dict:
    """One row's figures from per-fold jobs: fold accuracies, pooled fold scores for the global metrics (at the
    first job's fixed threshold)."""
    fold_jobs = sorted(fold_jobs, key=lambda j: j.metrics["fold"])
    threshold = fold_jobs[0].threshold
    jobs = [j.metrics for j in fold_jobs]
    folds = [m["fold"] for m in jobs]
    if len(set(folds)) != len(folds):
        raise FacematchError(f"duplicate folds {folds} in one configuration; pass one multirun per configuration")
    acc = np.array([m["fold_accuracy"] for m in jobs])
    scores = np.concatenate([m["fold_scores"] for m in jobs])
    same = np.concatenate([m["fold_same"] for m in jobs]).astype(bool)
    # VAL on the scores the protocol used (mean subtracted), as facematch-eval reports it; jobs written
    # before fold_protocol_scores existed fall back to raw cosine, and the row says so
    ranked_ok = all("fold_protocol_scores" in m for m in jobs)
    ranked = np.concatenate([m["fold_protocol_scores"] for m in jobs]) if ranked_ok else scores
    pooled = score_metrics(scores, ranked, same, threshold=threshold, fars=(1e-3,))
    # degraded data: each fold's model also scored on the original crops (what adaptation forgets)
    clean = [m["undegraded"]["fold_accuracy"] for m in jobs if m.get("undegraded")]
    extra = {"undegraded_accuracy_mean": float(np.mean(clean)), "undegraded_accuracy_std": float(np.std(clean))} \
        if len(clean) == len(jobs) else {}
    extra.update(combine_fold_figures(jobs))  # one side degraded (facematch.eval.cross_quality)
    # identification among each fold's own (unseen) people, averaged over the folds
    ident = [m["identification"] for m in jobs if "rank_5" in (m.get("identification") or {})]
    if len(ident) == len(jobs):
        extra.update(rank_5=float(np.mean([i["rank_5"] for i in ident])),
                          knn_accuracy=float(np.mean([i["knn_accuracy"] for i in ident])))
    extra.update(template_means([(m.get("identification") or {}).get("template") or {} for m in jobs]))
    seen = [j.images_seen for j in fold_jobs]
    if all(v is not None for v in seen):  # training images drawn per job (the same budget in every fold)
        extra["images_seen"] = int(np.mean(seen))
    if len(jobs) == 1 and fold_jobs[0].val_auc:  # one job (the CPU rows): its learning curve
        extra["val_auc_per_epoch"] = ", ".join(f"{v:.3f}" for v in fold_jobs[0].val_auc)
    losses = [(m.get("train_metrics") or {}).get("train/loss_epoch") for m in jobs]
    if all(v is not None for v in losses):
        extra["final_loss"] = float(np.mean(losses))
    return {
        **extra,
        "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()), "n_folds": len(jobs),
        "auc": pooled["auc"], "val_at_far_1e-3": pooled["val_at_far_1e-3"],
        "val_scores": "protocol" if ranked_ok else "raw cosine",
        "f1_at_threshold": pooled["f1_at_threshold"], "accuracy_at_threshold": pooled["accuracy_at_threshold"],
        "seconds": float(sum(m.get("seconds", 0.0) for m in jobs)),
        # how often validation preferred the untrained starting point over every trained epoch
        "kept": f"start on {sum(m.get('selected') == 'initial' for m in jobs)}/{len(jobs)} folds",
    }


def collect(roots: list[Path]) -> list[Row]:
    """Every row under ``roots``: one per evaluation run, one per configuration of per-fold training jobs."""
    rows: list[Row] = []
    fold_groups: dict[tuple, list[FoldJob]] = defaultdict(list)
    for root in roots:
        if not root.exists():
            raise FacematchError(f"no such run directory: {root}")
        for mpath in sorted(root.rglob("metrics.json")):
            loaded = load_run(mpath)
            if loaded is None:
                continue
            cfg, metrics = loaded
            desc = describe(cfg, mpath.parent)
            if "fold" in metrics:
                budget = training_budget(mpath.parent, cfg)
                threshold = (cfg.get("protocol") or {}).get("threshold", cfg.get("threshold", 0.6))
                fold_groups[(str(mpath.parent.parent), tuple(desc.items()))].append(FoldJob(
                    metrics, threshold, for_config(cfg), machine(mpath.parent, metrics),
                    budget.get("images_seen"), budget.get("val_auc")))
            else:
                extra = {"n_folds": len(metrics.get("fold_accuracies", [])),
                         "val_scores": "protocol" if metrics.get("ranking_scores") == "protocol" else "raw cosine"}
                # an evaluation set beside a published row (exp1_pretrained_irv1)
                rows.append(Row(desc, metrics, str(mpath), published=for_config(cfg), extra=extra))
    for (parent, desc), jobs in fold_groups.items():
        rows.append(Row(dict(desc), combine_folds(jobs), parent, published=jobs[0].published, machine=jobs[0].machine))
    return rows
