"""The experiment-tooling options compose, without data: logger=mlflow (a local file store, offline) and
logger=wandb (offline), hparams_search=optuna (Hydra's Optuna sweeper over lr and margin, maximising the
validation metric), debug=default|fdr|limit|overfit|profiler. Their runs on the real data:
tests/integration/test_tracking.py."""

from __future__ import annotations

import os

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import open_dict

from facematch.config import config_dir, instantiate_collection, instantiate_optional
from tests.helpers import config_options as options

DEBUG = ["default", "fdr", "limit", "overfit", "profiler"]


def test_tooling_groups_have_the_expected_options():
    assert set(options("logger")) >= {"mlflow", "wandb"}
    assert options("hparams_search") == ["optuna"]
    assert options("debug") == DEBUG


def test_mlflow_logger_is_a_local_file_store_with_telemetry_off(cfg_factory, tmp_path, monkeypatch):
    for var in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    cfg = cfg_factory("logger=mlflow", f"paths.log_dir={tmp_path}/outputs")
    (logger,) = instantiate_collection(cfg.logger)
    assert type(logger).__name__ == "MLFlowLogger"
    # one store for every run under the output root, so that runs accumulate; no server
    assert logger._tracking_uri == f"file:{tmp_path}/outputs/mlflow"
    assert logger._experiment_name == "train" and logger._log_model is False
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true" and os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert dict(logger.tags) == {"output_dir": cfg.paths.output_dir}


def test_mlflow_respects_a_users_own_setting(cfg_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = cfg_factory("logger=mlflow", f"paths.log_dir={tmp_path}/outputs")
    instantiate_collection(cfg.logger)
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "1"


def test_wandb_logger_is_offline_in_the_run_folder(cfg_factory):
    cfg = cfg_factory("logger=wandb")
    (logger,) = instantiate_collection(cfg.logger)  # lazy: wandb.init only on first use
    assert type(logger).__name__ == "WandbLogger" and logger._offline and logger._log_model is False
    assert logger.save_dir == cfg.paths.output_dir and logger._project == "facematch"


def _hydra_cfg(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_optuna_search_space_and_direction():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import FloatDistribution

    from hydra_plugins.facematch_optuna_sweeper.sweeper import search_space

    cfg = _hydra_cfg("hparams_search=optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.facematch_optuna_sweeper.sweeper.OptunaSweeper"
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper.direction == "maximize" and cfg.optimized_metric == cfg.monitor == "val/auc"
    assert cfg.monitor_mode == "max" and sweeper.n_trials == 20 and sweeper.n_jobs == 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == cfg.seed
    space, fixed = search_space(OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in sweeper.params.items()]))
    assert space == {"optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
                     "margin": FloatDistribution(0.1, 2.0)} and not fixed
    sampler = instantiate(sweeper.sampler)
    assert type(sampler).__name__ == "TPESampler"


def test_optuna_search_space_kinds_and_fixed_values():
    """range() and choice() are discrete; a plain value on the command line takes a key out of the space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hydra_plugins.facematch_optuna_sweeper.sweeper import search_space

    parse = OverridesParser.create().parse_overrides
    space, fixed = search_space(parse(["data.test_fold=range(0,10)", "loss=choice(triplet,contrastive)",
                                       "batch=tag(int, log, interval(8, 64))", "data.test_fold=3", "seed=1"]))
    assert space == {"loss": CategoricalDistribution(["triplet", "contrastive"]),
                     "batch": IntDistribution(8, 64, log=True)}
    assert fixed == {"data.test_fold": "3", "seed": "1"}
    space, _ = search_space(parse(["data.test_fold=range(0,10,3)"]))
    assert space == {"data.test_fold": IntDistribution(0, 9, step=3)}


def test_optuna_leaves_the_run_itself_alone():
    plain, search = _hydra_cfg(), _hydra_cfg("hparams_search=optuna")
    for cfg in (plain, search):
        with open_dict(cfg):
            del cfg["hydra"]
    with open_dict(search):
        del search["optimized_metric"]
    assert plain == search


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_configs_compose(cfg_factory, debug):
    cfg = cfg_factory(f"debug={debug}")
    t = cfg.trainer
    assert cfg.task_name == "debug" and list(cfg.logger) == ["csv"]
    assert t.accelerator == "cpu" and t.devices == 1 and t.precision == "32-true" and t.detect_anomaly
    assert cfg.evaluate is False and cfg.validate_first is False and cfg.data.num_workers == 0
    expected = {"default": {"max_epochs": 1}, "fdr": {"fast_dev_run": True},
                "limit": {"max_epochs": 3, "limit_train_batches": 3, "limit_val_batches": 2, "limit_test_batches": 2},
                "overfit": {"max_epochs": 20, "overfit_batches": 3, "enable_checkpointing": False},
                "profiler": {"max_epochs": 1}}[debug]
    assert {k: t[k] for k in expected} == expected
    if debug == "overfit":
        assert not cfg.callbacks and instantiate_optional(cfg.scheduler) is None and cfg.data.augment.enabled is False
    trainer = instantiate(t, logger=False, callbacks=instantiate_collection(cfg.callbacks))
    if debug == "profiler":
        assert type(trainer.profiler).__name__ == "SimpleProfiler"
        assert str(trainer.profiler.dirpath) == cfg.paths.output_dir


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_overrides_the_experiment_and_yields_to_the_command_line(cfg_factory, debug):
    cfg = cfg_factory("experiment=exp2_contrastive_adam", f"debug={debug}", "logger=mlflow")
    assert cfg.exp_name == "exp2_contrastive_adam" and cfg.arch.name == "mobilefacenet"  # the experiment's model
    assert cfg.validate_first is False and cfg.trainer.accelerator == "cpu"  # debug wins over the experiment
    assert "mlflow" in cfg.logger and "csv" not in cfg.logger  # the command line wins over debug
    cli = cfg_factory(f"debug={debug}", "evaluate=true", "trainer.max_epochs=2", out="cli")
    assert cli.evaluate is True and cli.trainer.max_epochs == 2


def test_a_sweep_trial_returns_its_best_epoch_for_the_monitored_metric(monkeypatch):
    """What Optuna maximises is the checkpoint a trial keeps (best epoch), not the last epoch's value; a
    metric that is not monitored has only its last value."""
    from omegaconf import OmegaConf

    import facematch.train

    metrics = {"val/auc": 0.61, "best/val/auc": 0.83, "val/loss": 0.4}
    monkeypatch.setattr(facematch.train, "run_or_exit", lambda fn, cfg: metrics)
    assert facematch.train.hydra_main(OmegaConf.create({"monitor": "val/auc"})) == 0.83
    assert facematch.train.hydra_main(OmegaConf.create({"monitor": "val/auc", "optimized_metric": "val/loss"})) == 0.4
    del metrics["best/val/auc"]  # no checkpoint (fast_dev_run): the last value
    assert facematch.train.hydra_main(OmegaConf.create({"monitor": "val/auc", "optimized_metric": "val/auc"})) == 0.61
