"""The one LightningModule: an embedding net trained by a pml-shaped loss, optionally with a miner.

Every batch becomes ``(embeddings, labels, indices_tuple)`` in :func:`loss_inputs`; a miner, when set,
picks the tuples from ``(embeddings, labels)``; the loss takes all three (pytorch-metric-learning's
``loss(embeddings, labels, indices_tuple)``). Optimizer and scheduler are factories from the config;
validation and test score labelled pairs (ROC AUC, accuracy and F1 at the cosine threshold).
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from facematch.errors import FacematchError
from facematch.models.base import Backbone
from facematch.models.heads import EmbeddingHead
from facematch.models.net import EmbeddingNet

LossInputs = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]


def pair_metrics(threshold: float) -> MetricCollection:
    """AUROC, accuracy and F1 on probabilities p = (cos + 1) / 2, so the cosine threshold t is p > (t + 1) / 2.

    (torchmetrics treats inputs outside [0, 1] as logits and would apply a sigmoid to raw cosines.)
    """
    t = (threshold + 1.0) / 2.0
    return MetricCollection({"auc": BinaryAUROC(), "acc": BinaryAccuracy(threshold=t), "f1": BinaryF1Score(threshold=t)})


def loss_inputs(batch, embed: Callable[[torch.Tensor], torch.Tensor]) -> LossInputs:
    """Any batch -> ``(embeddings, labels, indices_tuple)``; each part of a batch is embedded separately.

    - P x K ``(x, labels)``: the labels decide (``indices_tuple`` None; a miner picks from them).
    - fixed triplets ``(a, p, n)`` of B rows: triplet i is rows ``(i, B + i, 2B + i)``; the labels
      ``(i, i, B + i)`` only keep rows apart (the people are not known).
    - labelled pairs ``(xa, xb, same, label_a, label_b)`` of B rows: pair i is rows ``(i, B + i)``, as
      pml's pair tuple ``(a1, p, a2, n)`` (positive pairs, then negative pairs); labels are identities.
    - distillation ``Taught(x, labels, teacher)``: as P x K (the teacher's embeddings go to the loss apart).
    """
    if hasattr(batch, "teacher"):
        return embed(batch.x), batch.label, None
    if len(batch) == 2:
        x, labels = batch
        return embed(x), labels, None
    if len(batch) == 3:
        parts = [embed(x) for x in batch]
        rows = torch.arange(parts[0].shape[0], device=parts[0].device)
        b = len(rows)
        return torch.cat(parts), torch.cat([rows, rows, rows + b]), (rows, rows + b, rows + 2 * b)
    xa, xb, same, label_a, label_b = batch
    ea, eb = embed(xa), embed(xb)
    b = ea.shape[0]
    same = same.to(ea.device).bool()
    pos, neg = torch.nonzero(same).flatten(), torch.nonzero(~same).flatten()
    labels = torch.cat([torch.as_tensor(label_a), torch.as_tensor(label_b)]).to(ea.device)
    return torch.cat([ea, eb]), labels, (pos, pos + b, neg, neg + b)


class SiameseModule(L.LightningModule):
    def __init__(
        self,
        net: EmbeddingNet,
        loss: nn.Module,
        miner: nn.Module | None,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        threshold: float = 0.6,
        monitor: str = "val/auc",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "loss", "miner", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.miner = miner or None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler if callable(scheduler) else None
        self.threshold, self.monitor = float(threshold), monitor
        self.val_metrics = pair_metrics(threshold).clone(prefix="val/")
        self.test_metrics = pair_metrics(threshold).clone(prefix="test/")
        self.run_config: dict | None = None  # the resolved Hydra config, saved into checkpoints
        # one image: Lightning's model summary measures sizes and FLOPs on it
        self.example_input_array = torch.zeros(1, 3, *net.spec.input_size)
        self.resumed = False  # whether fit() restored a checkpoint (then a loss's class weights come from it)

    @property
    def backbone(self) -> Backbone:
        return self.net.backbone

    @property
    def head(self) -> EmbeddingHead:
        return self.net.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), or cached backbone features (B, D) -> L2-normalised embeddings."""
        return self.net(x)

    # -- steps ------------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        miner = self.miner
        if miner is not None and len(batch) == 3 and hasattr(miner, "select"):  # a miner of fixed triplets
            batch, miner = self._hardest_rows(batch), None
        embeddings, labels, tuples = loss_inputs(batch, self)
        if miner is not None:
            if tuples is not None:  # fixed rows carry no identities to mine from
                raise FacematchError(f"{type(self.miner).__name__} mines P x K batches, but the training batches are "
                                     "fixed pairs or triplets; pick the miner with miner=..., which sets data.batches")
            tuples = miner(embeddings, labels)
        teacher = {"teacher": batch.teacher} if hasattr(batch, "teacher") else {}  # distillation's targets
        loss = self.loss(embeddings, labels, tuples, **teacher)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch[0].shape[0])
        active = getattr(self.loss, "active_fraction", None)  # losses with a hinge say how many triplets train
        fraction = active(embeddings, tuples) if active is not None else None
        if fraction is not None:
            self.log("train/active_triplets", fraction, on_step=False, on_epoch=True, batch_size=batch[0].shape[0])
        return loss

    @torch.no_grad()
    def _hardest_rows(self, batch):
        """The rows of a fixed-triplet batch that the miner's :meth:`select` keeps, scored without gradient
        and with the net in eval mode (BatchNorm on its running statistics), as the FaceNet reproduction
        chose them; only these rows are embedded again, with gradient, for the step."""
        was_training = self.net.training
        self.net.eval()
        embeddings, _, tuples = loss_inputs(batch, self)
        self.net.train(was_training)
        rows = self.miner.select(embeddings, tuples)[0]  # anchor i is row i of the batch
        return tuple(x[rows] for x in batch)

    def _pair_step(self, batch, metrics: MetricCollection, prefix: str):
        embeddings, labels, tuples = loss_inputs(batch, self)
        ea, eb = embeddings.chunk(2)
        cos = F.cosine_similarity(ea, eb)
        metrics.update(((cos + 1) / 2).clamp(0, 1), batch[2].long())
        if getattr(self.loss, "scores_pairs", True):  # class weights / a teacher know no validation person
            loss = self.loss(embeddings, labels, tuples)
            self.log(f"{prefix}/loss", loss, on_epoch=True, batch_size=ea.shape[0], sync_dist=True)
        return {"cosine": cos.detach(), "same": batch[2]}  # for callbacks (the TensorBoard figures)

    def validation_step(self, batch, batch_idx):
        return self._pair_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        self._pair_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    # -- losses with class weights (losses/margin.py) ------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Before fitting (and before a resumed checkpoint is restored): a loss with class weights is sized
        to the training classes."""
        self.resumed = False
        if stage != "fit" or not hasattr(self.loss, "bind"):
            return
        targets = getattr(getattr(self.trainer.datamodule, "train_set", None), "targets", None)
        if targets is None:
            raise FacematchError(f"{type(self.loss).__name__} learns one weight per training person from labelled "
                                 "images: its loss config sets data.batches (not pairs or triplet rows)")
        self.loss.bind(max(targets) + 1, self.net.head.dim)

    def on_fit_start(self) -> None:
        """Imprinting: unless resumed, class weights start at the class means under the starting weights."""
        if hasattr(self.loss, "imprint_from") and not self.resumed:
            from facematch.data.class_means import class_means

            self.loss.imprint_from(lambda: class_means(self.trainer.datamodule, self.net),
                                   pretrained=bool(getattr(self.net.backbone, "weights_path", None)))

    # -- optimisation -----------------------------------------------------------------------------------
    def configure_optimizers(self):
        own = getattr(self.loss, "param_groups", lambda: [])()  # class weights with their own learning rate
        taken = {id(p) for g in own for p in g["params"]}
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in taken]
        optimizer = self.optimizer_factory(params=[{"params": params}, *own] if own else params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch", "frequency": 1}}

    # -- checkpoints ------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """``checkpoint["facematch"]``: the ``arch`` and ``head`` config nodes the eval rebuilds the net
        from (:mod:`facematch.models.loading`), the backbone's name, and the whole resolved config."""
        config = self.run_config or {}
        checkpoint["facematch"] = {
            "backbone": self.net.spec.name,
            "arch": config.get("arch"),
            "head": config.get("head"),
            "config": self.run_config,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resume checkpoints written before the module held its net as ``net`` (``backbone.*``, ``head.*``)."""
        self.resumed = True
        state = checkpoint.get("state_dict") or {}
        if any(k.startswith(("backbone.", "head.")) for k in state):
            checkpoint["state_dict"] = {("net." + k if k.startswith(("backbone.", "head.")) else k): v
                                        for k, v in state.items()}
