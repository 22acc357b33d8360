"""The few lines a training run ends with: the result (fold k under the 10-fold protocol), the original
experiments' fixed-threshold metric beside it, labelled as such, and where the run's files are."""

from __future__ import annotations

from facematch.eval.metrics import metrics_at_threshold


def run_summary(metrics: dict, fold_result: dict | None, threshold: float, files: dict[str, str | None],
                tensorboard_dir: str | None) -> str:
    """Lines to print at the end of ``facematch-train``. ``metrics``: the run's metrics (``test/acc``,
    ``test/f1`` at the fixed ``threshold``; ``best/val/auc``...); ``fold_result``: :func:`facematch.eval.fold.score_fold`
    or None; ``files``: label -> path (None = not written)."""
    lines = ["", "Result"]
    if fold_result is not None:
        k, model = fold_result["fold"], fold_result.get("selected")
        lines.append(f"  fold {k} accuracy: {fold_result['fold_accuracy']:.4f}   (LFW 10-fold protocol: threshold "
                     f"and mean feature from the other nine folds; model: {model})")
    else:
        best = {k: v for k, v in metrics.items() if k.startswith("best/")}
        values = ", ".join(f"{k[5:]} {v:.4f}" for k, v in best.items()) or "none"
        lines.append(f"  no fold scored (needs data.test_fold=K and evaluate=true); best validation epoch: {values}")
    if fold_result is not None and "fold_scores" in fold_result:  # the figures facematch-report prints for the fold
        fixed = metrics_at_threshold(fold_result["fold_scores"], fold_result["fold_same"], threshold)
        lines.append(f"  fixed threshold {threshold:g} (the original experiments' metric, raw cosine): accuracy "
                     f"{fixed['accuracy']:.4f}, F1 {fixed['f1']:.4f} on fold {fold_result['fold']}'s pairs")
    elif "test/acc" in metrics:
        lines.append(f"  fixed threshold {threshold:g} (the original experiments' metric): accuracy "
                     f"{metrics['test/acc']:.4f}, F1 {metrics.get('test/f1', float('nan')):.4f} on the test pairs")
    lines.append("Files")
    shown = {label: path for label, path in files.items() if path}
    if tensorboard_dir:
        shown["TensorBoard"] = f"{tensorboard_dir}   (tensorboard --logdir {tensorboard_dir})"
    width = max(map(len, shown), default=0)
    lines += [f"  {label:<{width}}  {path}" for label, path in shown.items()]
    return "\n".join(lines)
