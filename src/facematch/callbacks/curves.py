"""Learning curves of a training run: validation AUC and loss, training loss, per epoch.

A Lightning callback (``callbacks.learning_curves``): after each validation epoch it records the epoch's
``val/auc``, ``val/loss``, ``train/loss_epoch`` and, for a hinge loss on given triplets,
``train/active_triplets`` (the fraction whose hinge is open), with ``callbacks.template_accuracy``
``val/template_rank_1`` / ``_5`` (the model before training too, with ``validate_first``,
as epoch -1), and rewrites ``learning_curves.json`` and ``learning_curves.png`` in the run folder, so a
stopped run keeps its curves. TensorBoard gets the same values from the module's own logging.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from facematch.utils.io import atomic_write_text

KEYS = ("val/auc", "val/loss", "train/loss_epoch", "train/active_triplets", "val/template_rank_1", "val/template_rank_5")


class LearningCurves(Callback):
    def __init__(self, dirpath: str, plot: bool = True):
        self.dirpath = Path(dirpath)
        self.plot = plot
        self.history: list[dict] = []

    def _record(self, trainer, epoch: int) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        row = {"epoch": epoch, **{k: float(metrics[k]) for k in KEYS if k in metrics}}
        if epoch < 0:
            row.pop("train/loss_epoch", None)
            row.pop("train/active_triplets", None)
        self.history = [r for r in self.history if r["epoch"] != epoch] + [row]
        self.history.sort(key=lambda r: r["epoch"])
        self.write()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":  # trainer.validate() before fitting: the starting point
            self._record(trainer, -1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # after the epoch's validation (Lightning validates inside the epoch loop) and its train/loss_epoch
        self._record(trainer, trainer.current_epoch)

    def write(self) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dirpath / "learning_curves.json", json.dumps(self.history, indent=1) + "\n")
        if self.plot and self.history:
            from facematch.eval.plots import learning_curves_plot

            learning_curves_plot(self.history, self.dirpath / "learning_curves.png")
