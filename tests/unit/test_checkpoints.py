"""The checkpoints the default callbacks keep: the best epoch by the monitored metric, and last.ckpt after
EVERY epoch (Lightning >= 2.6 writes its own last.ckpt only when a best checkpoint is saved, so a run whose
validation stopped improving would resume from its best epoch instead of its last)."""

from __future__ import annotations

import lightning as L
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


def test_last_checkpoint_is_the_last_epoch_when_validation_stops_improving(tmp_path):
    cfg = compose([f"paths.output_dir={tmp_path}"], tmp_path)
    callbacks = [instantiate(cfg.callbacks[name]) for name in ("model_checkpoint", "last_checkpoint")]
    loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
    trainer = L.Trainer(max_epochs=3, callbacks=callbacks, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(Worsening(), loader, loader)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(ckpts / "epoch_000.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], best["epoch"]) == (2, 0)
    assert trainer.checkpoint_callback.best_model_path.endswith("epoch_000.ckpt")  # what a run scores
    assert last_checkpoint(trainer) == str(ckpts / "last.ckpt")
