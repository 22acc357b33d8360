"""facematch's Optuna sweeper (hydra_plugins.facematch_optuna_sweeper) with a stand-in launcher: trials are asked
in batches of n_jobs, each batch is launched once, what a job returns is told to Optuna (a job returning None is
a failed trial), and the best trial is written to optimization_results.yaml. The real sweep (two training
trials through Hydra): tests/integration/test_tracking.py."""

from __future__ import annotations

from types import SimpleNamespace

import yaml
from omegaconf import OmegaConf

from hydra_plugins.facematch_optuna_sweeper.sweeper import OptunaSweeper


class Launcher:
    """Runs each job as ``value(overrides)``; records the batches."""

    def __init__(self, value):
        self.value, self.batches = value, []

    def launch(self, batch, initial_job_idx):
        self.batches.append((initial_job_idx, [list(b) for b in batch]))
        return [SimpleNamespace(return_value=self.value(dict(o.split("=", 1) for o in b))) for b in batch]


def run_sweep(tmp_path, value, arguments, **kwargs):
    import optuna

    sweeper = OptunaSweeper(sampler=optuna.samplers.RandomSampler(seed=0), **kwargs)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweeper.launcher = Launcher(value)
    sweeper.hydra_context = SimpleNamespace(config_loader=SimpleNamespace(load_sweep_config=lambda **_: None))
    sweeper.sweep(arguments)
    return sweeper.launcher.batches, yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())


def test_trials_are_launched_in_batches_and_the_best_is_kept(tmp_path):
    def value(o):  # best at lr = 1e-3, whatever the margin
        return -abs(float(o["optimizer.lr"]) - 1e-3) if o["loss"] == "triplet" else -1.0

    batches, best = run_sweep(tmp_path, value, ["seed=3", "loss=choice(triplet,contrastive)"], n_trials=5, n_jobs=2,
                              direction="maximize", params={"optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
                                                            "margin": "interval(0.1, 2.0)"})
    assert [(idx, len(b)) for idx, b in batches] == [(0, 2), (2, 2), (4, 1)]  # 5 trials in batches of 2
    jobs = [dict(o.split("=", 1) for o in job) for _, b in batches for job in b]
    assert all(j["seed"] == "3" and 1e-5 <= float(j["optimizer.lr"]) <= 1e-2 and 0.1 <= float(j["margin"]) <= 2.0
               for j in jobs)
    assert best["name"] == "optuna" and set(best["best_params"]) == {"optimizer.lr", "margin", "loss"}
    assert best["best_value"] == max(value(j) for j in jobs)
    (winner,) = [j for j in jobs if value(j) == best["best_value"]]
    assert best["best_params"]["optimizer.lr"] == float(winner["optimizer.lr"])


def test_a_trial_that_returns_nothing_fails_and_does_not_win(tmp_path):
    calls = iter(range(4))

    def value(o):
        return None if next(calls) == 0 else float(o["margin"])

    _, best = run_sweep(tmp_path, value, [], n_trials=4, direction="minimize", params={"margin": "interval(0.1, 2.0)"})
    assert 0.1 <= best["best_value"] <= 2.0 and best["best_params"]["margin"] == best["best_value"]
