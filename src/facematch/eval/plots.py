"""Evaluation plots. Each function draws one figure, writes it as a PNG atomically (unless its path is None)
and returns it.

Figures are built as bare :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``: no global backend switch, no figure registry to leak, safe in headless workers. The
returned Figure can also go to TensorBoard (``SummaryWriter.add_figure``).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from facematch.eval import metrics
from facematch.utils.figures import blank_figure, new_figure, save_figure


def roc_plot(
    scores, same, path: str | os.PathLike | None, fars: Sequence[float] = (1e-3, 1e-2), title: str = "ROC"
) -> Figure:
    """ROC with a log-scaled FAR axis, AUC and EER in the legend, and the VAL@FAR points marked.

    FAR = 0 cannot sit on a log axis: the curve is drawn from half of the smallest non-zero FAR
    (``0.5 / n_different``)."""
    roc = metrics.roc_curve(scores, same)
    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(same).ravel().astype(bool)
    floor = 0.5 / max(int((~y).sum()), 1)
    auc = metrics.roc_auc(s, y)
    eer, _ = metrics.equal_error_rate(s, y)
    fig, ax = new_figure()
    ax.plot(np.maximum(roc["fpr"], floor), roc["tpr"], lw=1.5, label=f"AUC {auc:.4f}, EER {eer:.4f}")
    for far in fars:
        v = metrics.val_at_far(s, y, far)
        ax.plot([max(v["far"], floor)], [v["val"]], "o", ms=6, label=f"VAL@FAR≤{far:g}: {v['val']:.4f}")
        ax.axvline(far, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.005)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR / VAL)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def f1_plot(
    scores,
    same,
    path: str | os.PathLike | None,
    threshold: float = 0.6,
    thresholds=None,
    title: str = "F1 vs threshold",
) -> Figure:
    """F1 of ``score >= t`` against ``t``, with the fixed ``threshold`` and the best-F1 threshold
    marked."""
    t, f1s = metrics.f1_curve(scores, same, thresholds)
    best_t, best_f1 = metrics.best_f1_threshold(scores, same)
    fixed = metrics.metrics_at_threshold(scores, same, threshold)
    fig, ax = new_figure()
    ax.plot(t, f1s, lw=1.5, color="C0", label="F1")
    ax.axvline(threshold, color="C1", ls="--", label=f"fixed {threshold:g}: F1 {fixed['f1']:.4f}")
    ax.axvline(best_t, color="C2", ls=":", label=f"best {best_t:.3f}: F1 {best_f1:.4f}")
    ax.plot([best_t], [best_f1], "o", color="C2")
    ax.set_xlabel("similarity threshold")
    ax.set_ylabel("F1")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def score_histogram(
    scores,
    same,
    path: str | os.PathLike | None,
    threshold: float | None = 0.6,
    bins: int = 50,
    title: str = "similarity of same vs different pairs",
) -> Figure:
    """Overlaid density histograms of same-pair and different-pair scores (shared bins), with a
    vertical line at ``threshold`` (omitted when ``None``)."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(same).ravel().astype(bool)
    edges = np.histogram_bin_edges(s, bins=bins)
    fig, ax = new_figure()
    ax.hist(s[y], bins=edges, density=True, alpha=0.55, color="C2", label=f"same ({int(y.sum())})")
    ax.hist(s[~y], bins=edges, density=True, alpha=0.55, color="C3", label=f"different ({int((~y).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def most_frequent_identities(labels, n_identities: int) -> np.ndarray:
    """The ``n_identities`` labels with the most images (ties: label sort order)."""
    classes, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return classes[order[: max(int(n_identities), 0)]]


def tsne_plot(
    emb,
    labels,
    n_identities: int,
    path: str | os.PathLike | None,
    seed: int = 0,
    perplexity: float = 30.0,
    title: str | None = None,
    method: str | None = None,
) -> Figure:
    """2-D t-SNE (:class:`sklearn.manifold.TSNE`, cosine metric, PCA init, ``random_state=seed``) of
    the embeddings of the ``n_identities`` most frequent identities, one colour per identity.

    ``perplexity`` is clipped to ``n_samples - 1`` (TSNE requires it to be below the sample count).
    ``method`` defaults to ``"exact"`` up to 500 points (faster there, and exact) and
    ``"barnes_hut"`` above."""
    from sklearn.manifold import TSNE

    e = np.asarray(emb, np.float64)
    y = np.asarray(labels).ravel()
    keep_ids = most_frequent_identities(y, n_identities)
    mask = np.isin(y, keep_ids)
    x, yk = e[mask], y[mask]
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 embeddings, got {n} for {len(keep_ids)} identities")
    perp = float(min(perplexity, n - 1))
    method = method or ("exact" if n <= 500 else "barnes_hut")
    xy = TSNE(
        n_components=2, perplexity=perp, metric="cosine", init="pca", random_state=seed, method=method
    ).fit_transform(x)
    fig, ax = new_figure(size=(7.0, 6.0))
    markers = "o^sDvP*X"
    for i, ident in enumerate(keep_ids):
        m = yk == ident
        ax.scatter(xy[m, 0], xy[m, 1], s=14, color=f"C{i % 10}", marker=markers[(i // 10) % len(markers)],
                   label=str(ident))
    if len(keep_ids) <= 20:
        ax.legend(fontsize=6, markerscale=0.8, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {n} embeddings, {len(keep_ids)} identities (perplexity {perp:g})")
    return save_figure(fig, path)


def learning_curves_plot(history: Sequence[dict], path: str | os.PathLike, title: str = "learning curves") -> Figure:
    """Validation AUC and the fraction of active triplets (left), the training and validation losses (right)
    per epoch. ``history`` rows: ``{"epoch", "val/auc", "val/loss", "train/loss_epoch",
    "train/active_triplets"}`` (missing keys are skipped); an ``epoch`` of -1
    is the model before training (``validate_first``)."""
    fig = blank_figure((9.0, 3.8))
    ax_auc, ax_loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

    def series(key):
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    x, y = series("val/auc")
    ax_auc.plot(x, y, "o-", lw=1.5, ms=4, label="validation AUC")
    for key, label, style in (("train/active_triplets", "active triplets (fraction)", "s--"),
                              ("val/template_rank_1", "template accuracy (val)", "^-")):
        x, y = series(key)  # triplet losses: the fraction that still trains; the FaceNet rows' accuracy
        if x:
            ax_auc.plot(x, y, style, lw=1.0, ms=3, label=label)
    ax_auc.set_xlabel("epoch (-1: before training)")
    ax_auc.set_ylabel("ROC AUC / fraction")
    ax_auc.set_title(title)
    for key, label in (("train/loss_epoch", "training loss"), ("val/loss", "validation loss")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, "o-", lw=1.5, ms=4, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    for ax in (ax_auc, ax_loss):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a loss without validation pairs (ArcFace) may have no curve yet
            ax.legend(fontsize=8)
    return save_figure(fig, path)
