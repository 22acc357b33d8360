"""Nearest-template accuracy of the validation images, every validation epoch (``callbacks.template_accuracy``).

The FaceNet reproduction chose its checkpoint by this figure: templates of ``per_class`` training images per
person (:func:`facematch.eval.nearest_template.draw_templates`, the same draw every epoch), ``n_probes``
validation images drawn as the anchors of random triplets. Logged as ``val/template_rank_1`` and
``val/template_rank_5`` (``monitor=val/template_rank_1`` keeps the best epoch). Needs a datamodule with
``template_sets()`` (:class:`facematch.data.closed_set.ClosedSetDataModule`); only the images a draw uses
are embedded.
"""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from facematch.data.datasets import ImageDataset
from facematch.errors import FacematchError
from facematch.eval.nearest_template import draw_probes, draw_templates, template_accuracy


class TemplateAccuracy(Callback):
    def __init__(self, n_probes: int = 4000, per_class: int = 5, seed: int = 0, batch_size: int = 64):
        self.n_probes, self.per_class, self.seed, self.batch_size = int(n_probes), int(per_class), int(seed), batch_size

    @torch.no_grad()
    def _embed(self, pl_module, dm, paths: list[str]) -> np.ndarray:
        """The validation crops of ``paths`` through the module in eval mode (BatchNorm on its running
        statistics, as ``testValues`` calls ``model.eval()``), whatever mode the caller left it in."""
        ds = ImageDataset(paths, [0] * len(paths), dm.source, dm._transform(False))
        was_training = pl_module.training
        pl_module.eval()
        try:
            out = [pl_module(x.to(pl_module.device)).float().cpu()
                   for x, _ in DataLoader(ds, batch_size=self.batch_size)]
        finally:
            pl_module.train(was_training)
        return torch.cat(out).numpy()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        dm = trainer.datamodule
        if not hasattr(dm, "template_sets"):
            raise FacematchError("callbacks.template_accuracy needs a closed-set split (data=...closed_set, e.g. "
                                 "experiment=seed2_facenet_cpu); drop it with ~callbacks.template_accuracy")
        (pool, pool_labels), (val, val_labels) = dm.template_sets()
        _, picks = draw_templates(pool_labels, self.per_class, self.seed)
        used = np.unique(picks)
        emb = self._embed(pl_module, dm, [pool[i] for i in used])
        pool_emb = np.zeros((len(pool), emb.shape[1]))
        pool_emb[used] = emb
        probes = draw_probes(val_labels, self.n_probes, self.seed + 1)
        uniq, inverse = np.unique(probes, return_inverse=True)
        probe_emb = self._embed(pl_module, dm, [val[i] for i in uniq])[inverse]
        res = template_accuracy(pool_emb, pool_labels, probe_emb, np.asarray(val_labels)[probes], self.per_class,
                                self.seed)
        pl_module.log_dict({f"val/{k}": res[k] for k in ("template_rank_1", "template_rank_5")}, sync_dist=True)
