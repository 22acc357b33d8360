"""The checkpoints the default callbacks keep: the best epoch by the monitored metric, and last.ckpt after
EVERY epoch (Lightning >= 2.6 writes its own last.ckpt only when a best checkpoint is saved, so a run whose
validation stopped improving would resume from its best epoch instead of its last); and the best checkpoint
of a run resumed into a new folder is the best over the whole run (Lightning alone forgets the best score)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from facematch.train import last_checkpoint
from tests.helpers import compose


class Worsening(L.LightningModule):
    """A linear model whose logged validation metric falls every epoch: epoch 0 stays the best."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, _):
        self.log("val/auc", 1.0 - 0.1 * self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(out, module: L.LightningModule, max_epochs: int, ckpt_path=None) -> L.Trainer:
    """``module`` trained with the default checkpoint callbacks into ``out``/checkpoints."""
    cfg = compose([f"paths.output_dir={out}"], out)
    callbacks = [instantiate(cfg.callbacks[name]) for name in ("model_checkpoint", "last_checkpoint")]
    loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader, loader, ckpt_path=ckpt_path, weights_only=True)
    return trainer


def test_last_checkpoint_is_the_last_epoch_when_validation_stops_improving(tmp_path):
    trainer = fit(tmp_path, Worsening(), 3)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(ckpts / "epoch_000.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], best["epoch"]) == (2, 0)
    assert trainer.checkpoint_callback.best_model_path.endswith("epoch_000.ckpt")  # what a run scores
    assert last_checkpoint(trainer) == str(ckpts / "last.ckpt")


class PeakAtEpoch1(Worsening):
    """val/auc 0.5, 0.9, 0.6, 0.7, 0.8 by epoch: epoch 1 is the best of the whole run."""

    def validation_step(self, batch, _):
        self.log("val/auc", (0.5, 0.9, 0.6, 0.7, 0.8)[self.current_epoch])


def test_resumed_run_keeps_the_best_epoch_from_before_the_interruption(tmp_path, recwarn):
    """Interrupted after epoch 2 (best: epoch 1), resumed from last.ckpt into a new run folder for epochs 3-4,
    which score better than epoch 2 but worse than epoch 1: the kept checkpoint is still epoch 1's."""
    first = fit(tmp_path / "a", PeakAtEpoch1(), 3)
    assert first.checkpoint_callback.best_model_path.endswith("epoch_001.ckpt")
    trainer = fit(tmp_path / "b", PeakAtEpoch1(), 5, ckpt_path=tmp_path / "a" / "checkpoints" / "last.ckpt")
    ckpt = trainer.checkpoint_callback
    ckpts = tmp_path / "b" / "checkpoints"
    assert ckpt.best_model_path == str(ckpts / "epoch_001.ckpt")  # in the new run folder, what a run scores
    assert float(ckpt.best_model_score) == pytest.approx(0.9)
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_001.ckpt", "last.ckpt"]
    kept = torch.load(ckpts / "epoch_001.ckpt", map_location="cpu", weights_only=True)
    assert kept["epoch"] == 1
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 4
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]  # no warning left to print


def test_resumed_run_replaces_the_earlier_best_when_it_scores_better(tmp_path):
    """Interrupted after epoch 0 (0.5), resumed elsewhere: epoch 1 (0.9) beats it and is the one kept."""
    fit(tmp_path / "a", PeakAtEpoch1(), 1)
    trainer = fit(tmp_path / "b", PeakAtEpoch1(), 3, ckpt_path=tmp_path / "a" / "checkpoints" / "last.ckpt")
    ckpts = tmp_path / "b" / "checkpoints"
    assert trainer.checkpoint_callback.best_model_path == str(ckpts / "epoch_001.ckpt")
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_001.ckpt", "last.ckpt"]
    assert (tmp_path / "a" / "checkpoints" / "epoch_000.ckpt").is_file()  # the earlier run's folder is untouched
