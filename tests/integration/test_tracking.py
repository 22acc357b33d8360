"""Experiment tooling on a small real LFW subset: logger=mlflow writes a run with metrics to the local file
store, logger=wandb an offline run folder, neither trying the network; hparams_search=optuna runs its trials
through the entry point and keeps the best; the debug configs run. Composition alone: tests/unit/test_tracking_configs.py."""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from pathlib import Path

import pytest
import yaml

from facematch.train import train
from tests.helpers import FAST

# one tiny real epoch (loggers log nothing under fast_dev_run): 2 training and 1 validation batches
TINY = [*FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]

_REMOTE: list[str] = []  # connections this process tried to anything but this machine (audit hook below)


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address:
            try:
                local = ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
            except ValueError:
                local = address[0] == "localhost"
            if not local:
                _REMOTE.append(f"connect {address}")
    elif event == "socket.getaddrinfo" and args and args[0] not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        _REMOTE.append(f"resolve {args[0]}")


sys.addaudithook(_audit)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Fails the test if anything tries to reach another machine: this process's connections and name look-ups
    (audit hook), and any HTTP(S) from a helper process honouring the proxy variables (wandb-core): those point
    at a local listener that must see no connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    hits: list = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                hits.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    _REMOTE.clear()
    yield
    stop.set()
    thread.join(2)
    listener.close()
    assert not _REMOTE, _REMOTE
    assert not hits, f"{len(hits)} connection(s) to the stand-in proxy: something tried the network"


@pytest.mark.slow
@pytest.mark.usefixtures("data_dir", "no_network")
def test_mlflow_run_lands_in_the_local_store(cfg_factory, mfn_weights, tmp_path, monkeypatch):
    for var in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    cfg = cfg_factory("logger=mlflow", f"paths.log_dir={tmp_path}/outputs", "arch=mobilefacenet",
                      f"arch.weights={mfn_weights}", *TINY)
    metrics = train(cfg)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{tmp_path}/outputs/mlflow")
    experiment = client.get_experiment_by_name("train")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["output_dir"] == cfg.paths.output_dir
    assert run.data.metrics["val/auc"] == pytest.approx(metrics["val/auc"])
    assert {"train/loss_epoch", "val/auc"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/auc")] == [1]  # the global step


@pytest.mark.slow
@pytest.mark.usefixtures("data_dir", "no_network")
def test_wandb_run_is_written_offline(cfg_factory, mfn_weights, tmp_path, monkeypatch):
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": tmp_path / "wandb-dir",
                       "WANDB_CONFIG_DIR": tmp_path / "wandb-config", "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
                       "WANDB_DATA_DIR": tmp_path / "wandb-data", "WANDB_DISABLE_GIT": "true"}.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = cfg_factory("logger=wandb", "arch=mobilefacenet", f"arch.weights={mfn_weights}", *TINY)
    train(cfg)
    import wandb

    assert wandb.run is None  # train() finished it: a multirun's next job starts its own
    (run_dir,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    (record,) = run_dir.glob("run-*.wandb")
    assert b"val/auc" in record.read_bytes()


# facematch's own Optuna sweeper (src/hydra_plugins/facematch_optuna_sweeper) on the stable hydra-core.
@pytest.mark.slow
@pytest.mark.usefixtures("data_dir")
def test_optuna_search_runs_trials_and_keeps_the_best(tmp_path, mfn_weights, monkeypatch):
    # The console entry point's own Hydra main, in-process (as test_train.test_margin_multirun).
    import facematch.train

    sweep = tmp_path / "sweep"
    argv = ["facematch-train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "arch=mobilefacenet",
            f"arch.weights={mfn_weights}", "trainer.fast_dev_run=true", "logger=csv", "test=false", *FAST,
            f"hydra.sweep.dir={sweep}"]
    monkeypatch.setattr(sys, "argv", argv)
    facematch.train.main()
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in trials] == ["0", "1"]
    returned = []
    for trial in trials:
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        config = yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())
        drawn = dict(o.split("=", 1) for o in overrides if o.split("=")[0] in ("optimizer.lr", "margin"))
        assert float(drawn["optimizer.lr"]) == config["optimizer"]["lr"] and float(drawn["margin"]) == config["margin"]
        returned.append(json.loads((trial / "train_metrics.json").read_text())["val/auc"])
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["name"] == "optuna" and set(best["best_params"]) == {"optimizer.lr", "margin"}
    assert 1e-5 <= best["best_params"]["optimizer.lr"] <= 1e-2 and 0.1 <= best["best_params"]["margin"] <= 2.0
    assert best["best_value"] == pytest.approx(max(returned))  # maximised: the best trial's returned val/auc


@pytest.mark.parametrize("debug", ["fdr", pytest.param("limit", marks=pytest.mark.slow),
                                   pytest.param("profiler", marks=pytest.mark.slow)])
@pytest.mark.usefixtures("data_dir")
def test_debug_configs_run(cfg_factory, mfn_weights, debug):
    cfg = cfg_factory(f"debug={debug}", "arch=mobilefacenet", f"arch.weights={mfn_weights}", *FAST)
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert 0.0 <= metrics["val/auc"] <= 1.0 and not (out / "metrics.json").exists()  # no per-fold scoring
    summary = json.loads((out / "train_metrics.json").read_text())
    if debug == "limit":  # 3 epochs of 3 batches
        assert summary["epochs"] == 3 and (out / "csv" / "metrics.csv").is_file()
    if debug == "profiler":
        assert "Total" in (out / "fit-profile.txt").read_text()
