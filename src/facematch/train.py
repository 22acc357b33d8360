"""Training entry point: ``python -m facematch.train`` / ``facematch-train`` (compose -> instantiate -> fit)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from facematch.config import check_config, config_dir, instantiate_collection, instantiate_node, to_container, write_json
from facematch.utils.renamed import check_overrides
from facematch.errors import FacematchError, run_or_exit
from facematch.utils.allocator import tune as tune_allocator
from facematch.utils.hardware import machine_info

log = logging.getLogger(__name__)

# Lightning and torch are imported where they are used, not here: a mistyped option or a missing file is
# reported at once instead of after importing Lightning, which takes seconds.


def build(cfg: DictConfig):
    """LightningModule and DataModule from a composed config: ``model`` nests the net (``arch`` + ``head``),
    ``loss``, ``miner``, ``optimizer`` and ``scheduler``; ``data.batches`` says what a training batch holds."""
    # Everything the module keeps as hyper-parameters is a plain Python value (the objects are ignored),
    # so checkpoints load with weights_only=True.
    from facematch.embedding.engine import EngineSettings

    model = instantiate_node(cfg.model, _convert_="all")
    model.run_config = to_container(cfg)
    backbone = model.net.backbone
    datamodule = instantiate_node(cfg.data, _partial_=True, _convert_="all")(spec=backbone.spec)
    if datamodule.attach_backbone(backbone, engine=EngineSettings.from_config(cfg.embed)):
        log.info("frozen trunk: training the last %d stages and the head on cached trunk activations",
                 backbone.trainable_stages)
    return model, datamodule


def fetch_inputs(cfg: DictConfig) -> None:
    """Fetch what the run reads and does not have: the named pretrained weights (``arch.pretrained``, into
    ``$FACEMATCH_WEIGHTS_DIR``) and LFW (into ``$FACEMATCH_DATA_DIR/lfw``, when the config reads it there).
    When neither can be had, one line names both."""
    from facematch.data.lfw_files import ensure_lfw
    from facematch.models.backbones import fetch_pretrained

    failed = []
    for step in (lambda: fetch_pretrained(**to_container(cfg.arch)),
                 lambda: ensure_lfw(cfg.data.get("root"), cfg.data.get("pairs"))):
        try:
            step()
        except FacematchError as err:
            failed.append(err)
    if len(failed) == 2:
        failed[0].args = (f"{failed[0]}; and {failed[1]}",)
    if failed:
        raise failed[0]


def mlflow_logger(**kwargs):
    """Lightning's ``MLFlowLogger`` for ``logger=mlflow`` (conf/logger/mlflow.yaml), local and offline. MLflow 3
    refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true (its sqlite backend needs sqlalchemy + alembic,
    which mlflow-skinny lacks), and ``import mlflow`` sends usage telemetry unless MLFLOW_DISABLE_TELEMETRY=true;
    both are set here (unless set already), before mlflow is imported. Hydra refuses to set them from a config."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from lightning.pytorch.loggers import MLFlowLogger

    if kwargs.get("tags") is not None:  # MLFlowLogger adds mlflow.runName to the dict it is given: a plain one
        kwargs["tags"] = dict(kwargs["tags"])
    return MLFlowLogger(**kwargs)


def select_on_validation(cfg, trainer, model, initial: dict, initial_state: dict | None) -> str:
    """Load the model that validation prefers into ``model``: the best checkpoint, or, with
    ``validate_first``, the untrained starting point when no epoch beat it. Returns which one."""
    ckpt = trainer.checkpoint_callback
    best_score = ckpt.best_model_score if ckpt is not None else None
    start = initial.get(f"initial/{cfg.monitor}")
    if initial_state is not None and start is not None and (
        best_score is None or (start > float(best_score) if cfg.monitor_mode == "max" else start < float(best_score))
    ):
        model.net.load_state_dict(initial_state)
        return "initial"
    if ckpt is not None and ckpt.best_model_path:
        import torch

        model.load_state_dict(torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
        return Path(ckpt.best_model_path).stem
    return "last"


def train(cfg: DictConfig) -> dict:
    """One training job from a composed ``train`` config; the W&B run a logger opened is finished however the
    job ends (success, a user error, Ctrl-C): left open, a multirun's next job would log into it."""
    try:
        return _train(cfg)
    finally:
        finish_wandb()


def finish_wandb() -> None:
    """Finish the open W&B run, if wandb was imported and a run is open (WandbLogger leaves it open)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _train(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    check_config(cfg)
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise FacematchError(f"checkpoint not found: {cfg.ckpt_path} (ckpt_path=PATH to a .ckpt file, e.g. .../checkpoints/last.ckpt)")
    if cfg.get("ckpt_path"):  # weights_only=True, as Lightning loads it below; a refusal is one line here
        from facematch.models.weights import check_checkpoint

        check_checkpoint(cfg.ckpt_path, "resume from a .ckpt file written by facematch-train (ckpt_path=PATH)")
    fetch_inputs(cfg)  # missing LFW or named weights: fetched now, or one line before any work
    import lightning as L
    import torch

    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    protocol = instantiate_node(cfg.protocol)  # a bad protocol setting fails now, not after training
    model, datamodule = build(cfg)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=instantiate_collection(cfg.get("callbacks")), logger=instantiate_collection(cfg.get("logger")) or False
    )
    datamodule.setup("fit")
    if not cfg.get("ckpt_path") and model.net.head.centered:  # a resumed run has its centre in the checkpoint
        model.net.head.set_center(datamodule.mean_backbone_feature(model.net.backbone))
    initial, initial_state = {}, None
    if cfg.get("validate_first"):  # the untrained (e.g. pretrained + identity head) model, for comparison
        # the net's (a loss's class weights, built when fitting starts, are no part of the scored model)
        initial_state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        initial = {f"initial/{k}": float(v) for k, v in trainer.validate(model, datamodule=datamodule, verbose=False)[0].items()}
        log.info("before training: %s", initial)
    log.info("fitting %s on %s", type(model).__name__, cfg.arch.name)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {**initial, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.best_model_score is not None:  # the best epoch's, not the last one's
        metrics[f"best/{cfg.monitor}"] = float(ckpt.best_model_score)

    if cfg.get("test") and cfg.data.get("test_fold") is not None:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and not cfg.trainer.get("fast_dev_run"):
            trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        else:
            trainer.test(model, datamodule=datamodule, verbose=False)  # the summary below says what they mean
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    fold_result, fold_embeddings = None, None
    # (skipped in fast_dev_run: a smoke test should not embed every image of pairs.txt). In a distributed run
    # whose process group is up, every rank scores (the images are embedded across them: facematch.eval.sharding)
    # and rank 0 writes; otherwise rank 0 alone.
    from facematch.eval.sharding import distributed

    sharded = distributed() is not None
    if cfg.get("evaluate") and cfg.data.get("test_fold") is not None and (trainer.is_global_zero or sharded) \
            and not trainer.fast_dev_run:
        from facematch.eval.fold import score_fold

        selected = select_on_validation(cfg, trainer, model, initial, initial_state if initial else None)
        fold_result, fold_embeddings = score_fold(model.backbone, model.head, cfg, protocol)
        fold_result["selected"] = selected
    if trainer.is_global_zero:
        ckpt = trainer.checkpoint_callback
        write_json(out_dir / "train_metrics.json", {
            **metrics,
            "seconds": time.perf_counter() - start,
            "epochs": trainer.current_epoch,
            "best_model_path": ckpt.best_model_path if ckpt else None,
            "last_model_path": last_checkpoint(trainer),
            "data": datamodule.stats,
            "machine": machine_info(),
        })
        if fold_result is not None:  # what facematch-report combines across the folds of a multirun
            write_json(out_dir / "metrics.json", {**fold_result, "seconds": time.perf_counter() - start,
                                                  "train_metrics": metrics})
        log_dashboard(trainer, cfg, metrics, fold_result, fold_embeddings, float(model.threshold), protocol.fars)
        print(end_of_run_summary(trainer, metrics, fold_result, out_dir, float(model.threshold)))
    return metrics


def last_checkpoint(trainer) -> str | None:
    """The path of the checkpoint written after the last epoch (``callbacks.last_checkpoint``), if any."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    paths = [cb.best_model_path for cb in trainer.checkpoint_callbacks
             if isinstance(cb, ModelCheckpoint) and cb.monitor is None and cb.best_model_path]
    return paths[0] if paths else None


def log_dashboard(trainer, cfg, metrics: dict, fold_result: dict | None, fold_embeddings, threshold: float,
                  fars) -> None:
    """TensorBoard (facematch.callbacks.dashboard): the held-out fold's projector, then the run's HParams session
    (its hyper-parameters, Hydra's choices and overrides among them, with its result)."""
    from facematch.callbacks.dashboard import DashboardFigures, log_run, run_hparams, run_result, tensorboard_loggers

    if not tensorboard_loggers(trainer):
        return
    if fold_embeddings is not None:
        for callback in trainer.callbacks:
            if isinstance(callback, DashboardFigures):
                callback.write_projector(trainer, fold_embeddings)
    hydra = HydraConfig.get()
    params = run_hparams(cfg, hydra.runtime.choices, hydra.overrides.task)
    log_run(trainer, params, run_result(metrics, fold_result, threshold, fars))


def sweep_dir() -> str | None:
    """The multirun's folder (every job's below it), or None for a single run."""
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    return str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None


def end_of_run_summary(trainer, metrics: dict, fold_result: dict | None, out_dir: Path, threshold: float) -> str:
    from facematch.callbacks.dashboard import tensorboard_loggers
    from facematch.callbacks.summary import run_summary

    ckpt = trainer.checkpoint_callback
    tensorboard = next((lg.log_dir for lg in tensorboard_loggers(trainer)), None)
    files = {"metrics": str(out_dir / ("metrics.json" if fold_result is not None else "train_metrics.json")),
             "best checkpoint": (ckpt.best_model_path or None) if ckpt else None}
    return run_summary(metrics, fold_result, threshold, files, tensorboard, sweep_dir())


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Returns the validation metric a sweeper optimises (hparams_search: ``optimized_metric``; else
    ``monitor``): the best epoch's value where it is the monitored metric (the checkpoint the run keeps),
    else the last epoch's."""
    metrics = run_or_exit(train, cfg)
    name = cfg.get("optimized_metric") or cfg.monitor
    return metrics.get(f"best/{name}", metrics.get(name))


def main() -> None:
    """``facematch-train``: a renamed key or option on the command line is one line naming the new one."""
    tune_allocator()
    run_or_exit(check_overrides, sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
