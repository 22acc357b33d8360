"""Training entry point: ``python -m facematch.train`` / ``facematch-train`` (compose -> instantiate -> fit)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facematch.config import config_dir, instantiate_collection, instantiate_optional, to_container, write_json
from facematch.errors import FacematchError, debug_enabled, report_and_exit

log = logging.getLogger(__name__)


def build(cfg: DictConfig):
    """Backbone, LightningModule and DataModule from a composed config."""
    backbone = instantiate(cfg.arch)
    # Objects are passed after instantiation so that Hydra never wraps them in config nodes, and the
    # module's hyper-parameters stay plain Python (checkpoints then load with weights_only=True).
    model = instantiate(cfg.loss, _partial_=True, _convert_="all")(
        backbone=backbone,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate_optional(cfg.get("scheduler")),
        head=OmegaConf.to_container(cfg.head, resolve=True),
        threshold=cfg.threshold,
        monitor=cfg.monitor,
    )
    model.run_config = to_container(cfg)
    datamodule = instantiate(cfg.data, _partial_=True, _convert_="all")(
        spec=backbone.spec, sampling=model.sampling, cache_dir=cfg.paths.cache_dir
    )
    if datamodule.attach_backbone(backbone):
        log.info("frozen backbone: training the head on cached backbone features")
    return model, datamodule


def train(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise FacematchError(f"checkpoint not found: {cfg.ckpt_path} (ckpt_path=PATH to a .ckpt file, e.g. .../checkpoints/last.ckpt)")
    model, datamodule = build(cfg)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=instantiate_collection(cfg.get("callbacks")), logger=instantiate_collection(cfg.get("logger")) or False
    )
    log.info("fitting %s on %s", type(model).__name__, cfg.arch.name)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test") and cfg.data.get("test_fold") is not None:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and not cfg.trainer.get("fast_dev_run"):
            trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True)
        else:
            trainer.test(model, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    fold_result = None
    ev = cfg.get("evaluate") or {}
    if ev.get("enabled") and cfg.data.get("test_fold") is not None and trainer.is_global_zero:
        from facematch.eval.fold import fold_metrics

        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:  # score the model selected on validation, not whatever the last epoch left
            model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        fold_result = fold_metrics(model, datamodule, cfg.data.pairs, int(cfg.data.test_fold), flip=ev.flip,
                                   subtract_mean=ev.subtract_mean, distance=ev.distance, threshold=cfg.threshold)
        log.info("fold %d accuracy (10-fold protocol, threshold from the other folds): %.4f",
                 fold_result["fold"], fold_result["fold_accuracy"])
    if trainer.is_global_zero:
        ckpt = trainer.checkpoint_callback
        write_json(out_dir / "train_metrics.json", {
            **metrics,
            "seconds": time.perf_counter() - start,
            "epochs": trainer.current_epoch,
            "best_model_path": ckpt.best_model_path if ckpt else None,
            "last_model_path": ckpt.last_model_path if ckpt else None,
            "data": datamodule.stats,
        })
        if fold_result is not None:  # what facematch-report combines across the folds of a multirun
            write_json(out_dir / "metrics.json", {**fold_result, "seconds": time.perf_counter() - start,
                                                  "train_metrics": metrics})
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except FacematchError as err:
        if debug_enabled():
            raise
        report_and_exit(err)
    return metrics.get(cfg.monitor)


if __name__ == "__main__":
    main()
