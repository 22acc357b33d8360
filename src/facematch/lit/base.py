"""The shared LightningModule: backbone -> projection head -> L2 embedding; optimizer and scheduler from
config; validation metrics on labelled pairs. Subclasses only say how a training batch becomes a loss.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from facematch.models.backbones import Backbone
from facematch.models.heads import EmbeddingHead


def pair_metrics(threshold: float) -> MetricCollection:
    """AUROC, accuracy and F1 on probabilities p = (cos + 1) / 2, so the cosine threshold t is p > (t + 1) / 2.

    (torchmetrics treats inputs outside [0, 1] as logits and would apply a sigmoid to raw cosines.)
    """
    t = (threshold + 1.0) / 2.0
    return MetricCollection({"auc": BinaryAUROC(), "acc": BinaryAccuracy(threshold=t), "f1": BinaryF1Score(threshold=t)})


class SiameseModule(L.LightningModule):
    #: how the DataModule must serve training data: "pairs", "triplets" or "pk"
    sampling = "pairs"

    def __init__(
        self,
        backbone: Backbone,
        margin: float,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        head: Mapping[str, Any] | None = None,
        threshold: float = 0.6,
        monitor: str = "val/auc",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"], logger=False)
        self.backbone = backbone
        self.head = EmbeddingHead(backbone.spec.embedding_dim, **dict(head or {}))
        self.margin = float(margin)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler if callable(scheduler) else None
        self.threshold, self.monitor = float(threshold), monitor
        self.val_metrics = pair_metrics(threshold).clone(prefix="val/")
        self.test_metrics = pair_metrics(threshold).clone(prefix="test/")
        self.run_config: dict | None = None  # the resolved Hydra config, saved into checkpoints

    # -- model ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> embeddings; cached backbone features (B, D) go straight to the head."""
        return self.head(x if x.dim() == 2 else self.backbone(x))

    def training_loss(self, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pair_loss(self, ea, eb, same, la, lb) -> torch.Tensor:
        """Loss on a labelled validation/test pair batch, in the subclass's own terms."""
        raise NotImplementedError  # pragma: no cover - abstract

    # -- steps ------------------------------------------------------------------------------------------
    def init_head_center(self, dm) -> None:
        """With ``head.center``: set the head's centre to the mean backbone feature of the training images
        (from the feature cache on the fast path, else from one pass over up to 2,048 training images).
        Called once before fitting a new model; a resumed run gets the centre from its checkpoint."""
        if not self.head.centered:
            return
        store = getattr(dm, "feature_store", None)
        if store is not None:
            from facematch.data.datamodule import images_of

            mean = store.stack(sorted(images_of(dm.train_set)))[:, 0].float().mean(0)
        else:
            feats, n = [], 0
            was = self.backbone.training
            self.backbone.eval()
            with torch.no_grad():
                for batch in dm.train_dataloader():
                    x = batch[0].to(self.device)
                    feats.append(self.backbone(x).float())
                    n += x.shape[0]
                    if n >= 2048:
                        break
            self.backbone.train(was)
            mean = torch.cat(feats).mean(0)
        self.head.center.copy_(mean.to(self.head.center))

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch[0].shape[0])
        return loss

    def _pair_step(self, batch, metrics: MetricCollection, prefix: str):
        xa, xb, same, la, lb = batch
        ea, eb = self(xa), self(xb)
        cos = F.cosine_similarity(ea, eb)
        metrics.update(((cos + 1) / 2).clamp(0, 1), same.long())
        loss = self.pair_loss(ea, eb, same, la, lb)
        self.log(f"{prefix}/loss", loss, on_epoch=True, batch_size=xa.shape[0], sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._pair_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        self._pair_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    # -- optimisation -----------------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch", "frequency": 1}}

    # -- checkpoints ------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["facematch"] = {
            "backbone": self.backbone.spec.name,
            "head": dict(self.hparams.get("head") or {}),
            "config": self.run_config,
        }
