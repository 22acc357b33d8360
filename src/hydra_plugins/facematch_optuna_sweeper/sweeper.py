"""A Hydra sweeper that drives Optuna's ask/tell API: ``hparams_search=optuna`` (conf/hparams_search/optuna.yaml).

Why it is written here: no maintained plugin supports a stable Hydra with Optuna >= 3. The stable
``hydra-optuna-sweeper`` (1.3.x) pins ``optuna<3``; its 1.4 builds are pre-releases that need a pre-release
``hydra-core`` (they pass ``_execution_whitelist_`` to ``instantiate``). Optuna's ask/tell interface makes the
sweeper small: ask a batch of ``n_jobs`` trials, launch them as one batch through the configured Hydra launcher,
tell Optuna what each returned.

Search space: ``hydra.sweeper.params`` and the multirun command line, in Hydra's override syntax:
``interval(a, b)`` (float; tags ``log`` and ``int``), ``range(a, b[, step])`` (ints, stop excluded) and
``choice(...)`` / ``a,b,c`` (categorical). A plain value fixes that key for every trial, so a value given on the
command line takes a key out of the space. Each trial's task function returns the value Optuna optimises
(``direction``); the best trial goes to ``<sweep dir>/optimization_results.yaml``.

Optuna is imported when a sweep starts, not when Hydra scans its plugins at every start of a facematch command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def search_space(overrides: list[Override]) -> tuple[dict[str, Any], dict[str, str]]:
    """Optuna distributions for the sweep overrides and the fixed ``key -> value`` of the others; a later
    override of a key replaces an earlier one (the command line after ``hydra.sweeper.params``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for o in overrides:
        key = o.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if not o.is_sweep_override():
            fixed[key] = o.get_value_element_as_str()
            continue
        sweep = o.value()
        if isinstance(sweep, IntervalSweep):
            log_scale = "log" in sweep.tags
            if "int" in sweep.tags:
                space[key] = IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
            else:
                space[key] = FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
        elif isinstance(sweep, RangeSweep):
            values = list(sweep.range())
            if all(isinstance(v, int) for v in values):
                space[key] = IntDistribution(values[0], values[-1], step=int(sweep.step))
            else:
                space[key] = CategoricalDistribution([float(v) for v in values])
        elif isinstance(sweep, ChoiceSweep):
            space[key] = CategoricalDistribution(list(sweep.list))
        else:
            raise ValueError(f"{o.input_line}: the Optuna sweeper takes interval(), range() or choice()")
    return space, fixed


class OptunaSweeper(Sweeper):
    """Hydra ``Sweeper``: ``n_trials`` trials in batches of ``n_jobs``, each a job of the configured launcher."""

    def __init__(self, sampler: Any = None, direction: str = "maximize", study_name: str | None = None,
                 storage: str | None = None, n_trials: int = 20, n_jobs: int = 1, params: Any = None) -> None:
        self.sampler, self.direction, self.study_name, self.storage = sampler, direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from hydra.utils import instantiate

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()] + arguments))
        # Hydra instantiates the sweeper recursively, so the sampler arrives built; a plain config also works
        sampler = instantiate(self.sampler) if isinstance(self.sampler, (dict, DictConfig)) else self.sampler
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=sampler,
                                    direction=self.direction, load_if_exists=True)
        log.info("Optuna study %s: %d trials, %s over %s", study.study_name, self.n_trials, self.direction,
                 ", ".join(f"{k}: {v}" for k, v in space.items()))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        done = 0
        while done < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            batch = [[*(f"{k}={v}" for k, v in fixed.items()), *(f"{k}={v}" for k, v in t.params.items())]
                     for t in trials]
            self.validate_batch_is_legal(batch)
            for trial, ret in zip(trials, self.launcher.launch(batch, initial_job_idx=done)):
                value = ret.return_value  # re-raises the job's exception
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    log.error("trial %d returned no value (the task function must return a number)", trial.number)
                else:
                    study.tell(trial, float(value))
            done += len(trials)

        best = study.best_trial
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best trial %d: %s = %s", best.number, results["best_params"], best.value)
