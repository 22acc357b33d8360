"""TensorBoard dashboards of training runs (``logger=tensorboard``), so that a sweep folder answers the sweep's
question in one ``tensorboard --logdir SWEEP``:

- **HParams.** When a run ends (a resumed run too), :func:`log_run` hands its hyper-parameters
  (:func:`run_hparams`: every key the command line overrode or swept, and the loss, miner, margin, arch, head,
  optimizer, learning rate, scheduler, data and held-out fold of every run) and its result
  (:func:`run_result`: fold k's accuracy under the 10-fold protocol, AUC, EER, VAL@FAR and the fixed-threshold
  accuracy and F1 on fold k's pairs, the nearest-template figures where the fold has them, the best validation
  value) to Lightning's ``TensorBoardLogger.log_hyperparams(params, metrics=...)``: one HParams session per run,
  a table and a parallel-coordinates view across a sweep's runs.
- **Images per validation epoch.** :class:`DashboardFigures` (``callbacks.dashboard``) draws the validation
  pairs' ROC and same/different score histogram (:mod:`facematch.eval.plots`) as small images
  (``val/roc``, ``val/score_histogram``), every ``every_n_epochs`` epochs and the last one.
- **Projector.** After per-fold scoring, :meth:`DashboardFigures.write_projector` adds the embeddings of the
  held-out fold's people with face sprites, as ``facematch-eval`` writes its own (:func:`add_projector`).

In a distributed run the images are drawn from rank 0's share of the validation pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from facematch.eval.projector import add_projector

#: Config groups whose chosen option (Hydra's runtime choices) every run logs as a hyper-parameter.
GROUPS = ("experiment", "arch", "head", "loss", "miner", "optimizer", "scheduler", "data", "distill")
#: Config values every run logs as hyper-parameters (besides every overridden key).
VALUES = ("margin", "optimizer.lr", "data.test_fold", "seed")
#: The fold result's figures logged with the hyper-parameters (:func:`facematch.eval.metrics.score_metrics` keys).
FOLD_FIGURES = ("auc", "eer", "accuracy_at_threshold", "f1_at_threshold")


def _value(v: Any) -> int | float | str:
    """A config value as TensorBoard's HParams takes it: numbers and strings as they are, anything else as its
    JSON (a boolean as ``true`` / ``false``: torch's HParams writer would record it as the number 1 / 0)."""
    from omegaconf import OmegaConf

    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return v
    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v, resolve=True)
    return json.dumps(v, default=str)


def run_hparams(cfg, choices: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, int | float | str]:
    """A training run's hyper-parameters: the chosen option of each of :data:`GROUPS` (``none`` where a group is
    unset), the values of :data:`VALUES`, and every key of ``overrides`` (Hydra's task overrides: a swept or
    typed ``key=value``; a group's chosen option, a value as the composed ``cfg`` resolved it, ``removed`` for
    ``~key``); ``hydra.*`` overrides say where a run goes, not how it trains, and are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    params: dict[str, int | float | str] = {g: str(choices.get(g) or "none") for g in GROUPS if g in choices}
    params.update({k: _value(OmegaConf.select(cfg, k, default=None)) for k in VALUES})
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.is_delete():
            params[key] = "removed"
        elif key in choices:
            params[key] = str(choices[key] or "none")
        else:
            params[key] = _value(OmegaConf.select(cfg, key, default=None))
    return params


def run_result(metrics: Mapping[str, float], fold_result: Mapping | None, threshold: float,
               fars: Sequence[float]) -> dict[str, float]:
    """A run's result as the HParams view shows it (tags ``result/*``): with a scored fold, its accuracy under
    the protocol (``result/fold_accuracy``), AUC, EER and VAL@FAR on its protocol scores, accuracy and F1 at the
    fixed raw-cosine ``threshold`` on its pairs, the nearest-template and identification figures of its people
    where they were measured; without one, the test loop's figures; and the best validation value (``best/*``)."""
    from facematch.eval.metrics import far_key, score_metrics

    out: dict[str, float] = {}
    if fold_result is not None:
        out["result/fold_accuracy"] = float(fold_result["fold_accuracy"])
        scored = score_metrics(fold_result["fold_scores"], fold_result["fold_protocol_scores"],
                               fold_result["fold_same"], threshold=threshold, fars=tuple(fars))
        keys = (*FOLD_FIGURES, *(f"val_at_far_{far_key(f)}" for f in fars))
        out.update({f"result/{k}": float(scored[k]) for k in keys})
        ident = fold_result.get("identification") or {}
        figures = {**{k: ident[k] for k in ("rank_1", "rank_5") if k in ident},
                   **{k: v for k, v in (ident.get("template") or {}).items() if k.startswith("template_rank_")}}
        out.update({f"result/{k}": float(v) for k, v in figures.items()})
        if fold_result.get("undegraded"):
            out["result/undegraded_fold_accuracy"] = float(fold_result["undegraded"]["fold_accuracy"])
    else:
        out.update({f"result/{k.replace('/', '_')}": float(v) for k, v in metrics.items() if k.startswith("test/")})
    out.update({f"result/{k.replace('/', '_')}": float(v) for k, v in metrics.items() if k.startswith("best/")})
    return out


def tensorboard_loggers(trainer) -> list:
    from lightning.pytorch.loggers import TensorBoardLogger

    return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def log_run(trainer, params: Mapping[str, Any], result: Mapping[str, float]) -> None:
    """Log one HParams session (``params`` with the ``result`` metrics, at the run's last step) to each
    TensorBoard logger of ``trainer``, and close its event file. Rank 0 only (Lightning's loggers are)."""
    for logger in tensorboard_loggers(trainer):
        logger.log_hyperparams(dict(params), metrics=dict(result), step=trainer.global_step)
        # hparams.yaml was written (empty) when fitting ended; finalize writes it again with these
        (Path(logger.log_dir) / logger.NAME_HPARAMS_FILE).unlink(missing_ok=True)
        logger.finalize("success")


def figure_pixels(fig, dpi: int, size: tuple[float, float] = (4.0, 3.0)) -> np.ndarray:
    """A matplotlib figure drawn ``size`` inches at ``dpi`` as an (H, W, 3) uint8 array (no pyplot)."""
    fig.set_size_inches(*size)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


class DashboardFigures(Callback):
    """The validation pairs' ROC and score histogram as images every ``every_n_epochs`` validation epochs (and
    the last), 4 x 3 inches drawn at ``dpi`` (80: 320 x 240 px); the held-out fold's projector
    (``projector_identities`` people, ``sprite_size`` px faces) after per-fold scoring. Needs the module's validation step to return
    ``{"cosine", "same"}`` (:class:`facematch.lit.module.SiameseModule` does); does nothing without a
    TensorBoard logger."""

    def __init__(self, every_n_epochs: int = 1, dpi: int = 80, projector_identities: int = 20,
                 sprite_size: int = 32):
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.every_n_epochs, self.dpi = int(every_n_epochs), int(dpi)
        self.projector_identities, self.sprite_size = int(projector_identities), int(sprite_size)
        self._scores: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _due(self, trainer) -> bool:
        if trainer.sanity_checking or not trainer.is_global_zero or not tensorboard_loggers(trainer):
            return False
        epoch, last = trainer.current_epoch, trainer.max_epochs or -1  # -1: no last epoch (max_epochs=-1)
        return epoch % self.every_n_epochs == 0 or (last > 0 and epoch + 1 >= last)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._scores = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if isinstance(outputs, Mapping) and "cosine" in outputs and self._due(trainer):
            self._scores.append((outputs["cosine"].detach().float().cpu(), outputs["same"].detach().bool().cpu()))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._scores or not self._due(trainer):
            return
        scores = torch.cat([s for s, _ in self._scores]).numpy()
        same = torch.cat([y for _, y in self._scores]).numpy()
        self._scores = []
        if same.all() or not same.any():  # a ROC needs both kinds of pair
            return
        from facematch.eval import plots

        epoch = trainer.current_epoch
        images = {
            "val/roc": plots.roc_plot(scores, same, None, title=f"validation ROC, epoch {epoch}"),
            "val/score_histogram": plots.score_histogram(scores, same, None, threshold=float(pl_module.threshold),
                                                         title=f"validation pairs, epoch {epoch}"),
        }
        # the step Lightning logs this validation's val/* scalars at (validation runs before the step count moves)
        step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
        for tag, fig in images.items():
            pixels = figure_pixels(fig, self.dpi)
            for logger in tensorboard_loggers(trainer):
                logger.experiment.add_image(tag, pixels, step, dataformats="HWC")

    def write_projector(self, trainer, fold) -> None:
        """The projector of the held-out fold's people (``fold``: :class:`facematch.eval.fold.FoldEmbeddings`)."""
        if not trainer.is_global_zero or self.projector_identities <= 0:
            return
        for logger in tensorboard_loggers(trainer):
            add_projector(logger.experiment, fold.emb, fold.labels, fold.source, fold.paths,
                          self.projector_identities, step=trainer.global_step, sprite_size=self.sprite_size)
