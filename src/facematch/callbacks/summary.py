"""The few lines a training run ends with: the result (fold k under the 10-fold protocol), the original
experiments' fixed-threshold metric beside it, labelled as such, and where the run's files are; and the lines
a multirun ends with (:class:`SweepSummary`): each job's result and one ``tensorboard --logdir`` for all."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback as HydraCallback

from facematch.eval.metrics import metrics_at_threshold


def run_summary(metrics: dict, fold_result: dict | None, threshold: float, files: dict[str, str | None],
                tensorboard_dir: str | None, sweep_dir: str | None = None) -> str:
    """Lines to print at the end of ``facematch-train``. ``metrics``: the run's metrics (``test/acc``,
    ``test/f1`` at the fixed ``threshold``; ``best/val/auc``...); ``fold_result``: :func:`facematch.eval.fold.score_fold`
    or None; ``files``: label -> path (None = not written); ``sweep_dir``: a multirun job's sweep folder, which
    the TensorBoard line names (one ``tensorboard --logdir`` for all its runs)."""
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
        shown["TensorBoard"] = f"{tensorboard_dir}   (" + (f"every run of the sweep: tensorboard --logdir {sweep_dir}"
                                                         if sweep_dir else f"tensorboard --logdir {tensorboard_dir}") + ")"
    width = max(map(len, shown), default=0)
    lines += [f"  {label:<{width}}  {path}" for label, path in shown.items()]
    return "\n".join(lines)


def _job_result(job: Path) -> str:
    """One job's result in a few words, from the files it wrote (per-fold scoring, an eval, or training)."""
    if (job / "metrics.json").is_file():
        m = json.loads((job / "metrics.json").read_text())
        if "fold" in m:
            return f"fold {m['fold']} accuracy {m['fold_accuracy']:.4f}"
        if "accuracy_mean" in m:
            return f"accuracy {m['accuracy_mean']:.4f} over {len(m.get('fold_accuracies', []))} folds"
    if (job / "train_metrics.json").is_file():
        best = {k: v for k, v in json.loads((job / "train_metrics.json").read_text()).items() if k.startswith("best/")}
        return "best validation epoch: " + (", ".join(f"{k[5:]} {v:.4f}" for k, v in best.items()) or "none")
    return "no result (the job failed or is still running)"


def sweep_summary(sweep_dir: str | Path) -> str:
    """Lines to print when a multirun ends: each job (its folder and the overrides that set it apart from the
    others) with its result, then the one ``tensorboard --logdir`` that shows every job (HParams: side by side)."""
    sweep = Path(sweep_dir)
    jobs = sorted((p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml")),
                  key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    overrides = {job: yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or [] for job in jobs}
    common = set.intersection(*(set(o) for o in overrides.values())) if len(jobs) > 1 else set()
    lines = ["", f"Sweep: {len(jobs)} job{'s' if len(jobs) != 1 else ''} in {sweep}"]
    width = max((len(job.name) for job in jobs), default=0)
    for job in jobs:
        own = " ".join(o for o in overrides[job] if o not in common)
        lines.append(f"  {job.name:<{width}}  {_job_result(job)}" + (f"   ({own})" if own else ""))
    if any((job / "tensorboard").is_dir() for job in jobs):
        lines.append(f"  TensorBoard, every job (HParams tab: side by side): tensorboard --logdir {sweep}")
    return "\n".join(lines)


class SweepSummary(HydraCallback):
    """Hydra callback (``hydra.callbacks.sweep_summary``, conf/hydra/default.yaml): a multirun ends with
    :func:`sweep_summary` of its folder."""

    def __init__(self) -> None:
        self.sweep_dir: str | None = None

    def on_multirun_start(self, config, **kwargs) -> None:
        self.sweep_dir = str(config.hydra.sweep.dir)  # resolved once, as the sweeper resolves it

    def on_multirun_end(self, config, **kwargs) -> None:
        if self.sweep_dir and Path(self.sweep_dir).is_dir():
            print(sweep_summary(self.sweep_dir), flush=True)
