"""The figures of a facematch-eval run: ROC, F1 curve, score histogram and t-SNE as PNGs
(:func:`make_plots`, drawn by :mod:`facematch.eval.plots`), and its TensorBoard log (:func:`write_tensorboard`)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from facematch.eval.metrics_file import summary_table
from facematch.eval.verification import Protocol, Verification

log = logging.getLogger(__name__)


def make_plots(out_dir: Path, res: Verification, emb, labels, cfg: DictConfig, protocol: Protocol) -> dict:
    """``{name: Figure}`` for roc / f1_threshold / score_histogram / tsne, each also written as PNG.

    The ROC is drawn from ``ranked`` (the protocol scores, as AUC and VAL are computed); the F1 curve
    and the histogram from the raw cosine ``scores``, on the scale of the fixed threshold."""
    from facematch.eval import plots

    thr, scores, ranked, same, fars = float(protocol.threshold), res.cosine, res.ranked, res.same, protocol.fars
    figs = {
        "roc": plots.roc_plot(ranked, same, out_dir / "roc.png", fars=fars, title=f"ROC ({cfg_name(cfg)})"),
        "f1_threshold": plots.f1_plot(scores, same, out_dir / "f1_threshold.png", threshold=thr),
        "score_histogram": plots.score_histogram(scores, same, out_dir / "score_histogram.png", threshold=thr),
    }
    n_ids = int(cfg.eval.tsne_identities or 0)
    if n_ids > 0:
        try:
            figs["tsne"] = plots.tsne_plot(emb, labels, n_ids, out_dir / "tsne.png", seed=int(cfg.seed))
        except ValueError as err:
            log.warning("t-SNE skipped: %s", err)
    return figs


def cfg_name(cfg: DictConfig) -> str:
    return Path(str(cfg.data.root)).name


def write_tensorboard(log_dir: Path, metrics: dict, res: Verification, emb, labels, figures: dict, cfg: DictConfig,
                      source, paths: list[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from facematch.eval.projector import add_projector

    if log_dir.is_dir():  # a re-run into the same run dir replaces its TensorBoard data (as metrics.json)
        shutil.rmtree(log_dir)
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                writer.add_scalar(f"eval/{k}", float(v), 0)
        for i, acc in enumerate(metrics.get("fold_accuracies", [])):
            writer.add_scalar("eval/fold_accuracy", float(acc), i)
        for name, fig in figures.items():
            writer.add_figure(f"eval/{name}", fig, 0, close=False)
        same, scores = res.same, res.cosine
        writer.add_histogram("eval/similarity_same", scores[same], 0)
        writer.add_histogram("eval/similarity_different", scores[~same], 0)
        writer.add_text("eval/summary", "```\n" + summary_table(metrics, log_dir.parent) + "\n```", 0)
        n_ids = int(cfg.eval.tsne_identities or 0)
        if n_ids > 0 and len(paths):
            add_projector(writer, emb, labels, source, paths, n_ids)
    finally:
        writer.close()
