"""The multirun launchers (conf/launcher/): SLURM through submitit (one job per sweep point, or one
multi-node DDP job per point) and joblib for one machine. Composition only, and the sbatch script a
3-margin / 10-fold multirun would submit, written without submitting (no SLURM here). The parallel local
run: tests/integration/test_launchers.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import config_options

SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def launcher_of(overrides: list[str], sweep_dir: Path) -> tuple[dict, object]:
    """``(hydra.launcher resolved, the composed config)`` for a multirun with ``overrides``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from facematch.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra.sweep.dir={sweep_dir}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True), cfg


def test_launcher_group_options():
    assert config_options("launcher") == ["local", "slurm", "slurm_ddp"]


def test_no_launcher_is_hydras_basic_one(tmp_path):
    launcher, _ = launcher_of([], tmp_path)
    assert launcher["_target_"] == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize("extra,nodes,devices", [
    ([], 1, 1),
    (["trainer=gpu", "trainer.devices=2"], 1, 2),
    (["trainer=ddp", "trainer.num_nodes=3", "trainer.devices=2"], 3, 2),
])
def test_slurm_resources_follow_the_trainer(tmp_path, extra, nodes, devices):
    launcher, cfg = launcher_of(["launcher=slurm", *extra], tmp_path / "sweep")
    assert launcher["_target_"] == SUBMITIT
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (nodes, devices, devices)
    assert cfg.trainer.devices == devices
    assert launcher["submitit_folder"] == f"{tmp_path}/sweep/.submitit/%j"
    assert launcher["partition"] is launcher["account"] is launcher["qos"] is None
    assert launcher["timeout_min"] == 240 and launcher["cpus_per_task"] == 8 and launcher["mem_gb"] == 32
    assert launcher["array_parallelism"] == 16 and launcher["name"] == "train"


def test_slurm_cluster_values_from_the_command_line(tmp_path):
    launcher, _ = launcher_of(["launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj",
                               "hydra.launcher.timeout_min=720"], tmp_path)
    assert (launcher["partition"], launcher["account"], launcher["timeout_min"]) == ("gpu", "proj", 720)


def test_slurm_ddp_is_a_multi_node_ddp_trainer(tmp_path):
    launcher, cfg = launcher_of(["launcher=slurm_ddp"], tmp_path)
    assert cfg.hydra.runtime.choices["trainer"] == "ddp" and cfg.trainer.strategy == "ddp"
    assert cfg.trainer.use_distributed_sampler is False  # the data module deals P x K batches itself
    assert (cfg.trainer.accelerator, cfg.trainer.num_nodes, cfg.trainer.devices) == ("gpu", 2, 4)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    launcher, _ = launcher_of(["launcher=slurm_ddp", "trainer.num_nodes=4", "trainer.devices=8"], tmp_path)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (4, 8, 8)


def test_slurm_ddp_with_an_experiment_row_keeps_its_folds(tmp_path):
    launcher, cfg = launcher_of(["launcher=slurm_ddp", "experiment=exp2_contrastive_adam"], tmp_path)
    assert cfg.hydra.sweeper.params["data.test_fold"] == "range(0,10)"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.max_epochs == 5 and launcher["nodes"] == 2


def test_the_plugins_own_spelling_still_composes(tmp_path):
    """``hydra/launcher=submitit_slurm`` (the plugin's defaults, none of the project's values)."""
    launcher, _ = launcher_of(["hydra/launcher=submitit_slurm"], tmp_path)
    assert launcher["_target_"] == SUBMITIT and launcher["gpus_per_node"] is None


def test_local_is_joblib_over_loky_with_launcher_jobs(tmp_path):
    launcher, cfg = launcher_of(["launcher=local"], tmp_path)
    assert launcher["_target_"] == JOBLIB and launcher["backend"] == "loky" and launcher["n_jobs"] == 2
    assert cfg.launcher_jobs == 2
    assert launcher_of(["launcher=local", "launcher_jobs=4"], tmp_path)[0]["n_jobs"] == 4


# ---------------------------------------------------------------------------------------------------
# the sbatch script of a multirun, written and read back, never submitted


class Submitted(Exception):
    """Raised in place of running sbatch."""


def sbatch_of(argv: list[str], monkeypatch) -> tuple[str, list[list[str]]]:
    """Run ``facematch-train -m ARGV`` through the entry point's Hydra main, in-process, up to the moment
    submitit would call ``sbatch``: ``(the sbatch script, each array task's overrides in job order)``."""
    import submitit
    from submitit.core.utils import DelayedSubmission
    from submitit.slurm.slurm import SlurmExecutor

    import facematch.train

    scripts: list[tuple[str, Path]] = []

    def submit(self, command):  # the executor's own text for the submission file, then stop
        scripts.append((self._make_submission_file_text(command, "uid"), Path(self.folder)))
        raise Submitted

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun is there"
    monkeypatch.setattr(SlurmExecutor, "_submit_command", submit)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing and exiting
    monkeypatch.setattr(sys, "argv", ["facematch-train", "-m", *argv])
    with pytest.raises(Submitted):
        facematch.train.main()
    [(script, folder)] = scripts
    pickles = sorted(folder.parent.glob("*.pkl"))  # the array's tasks, pickled before sbatch
    tasks = [DelayedSubmission.load(p).args for p in pickles]
    assert submitit.__version__ and all(len(t) == 5 for t in tasks)
    return script, [list(overrides) for overrides, _, _, _, _ in sorted(tasks, key=lambda t: t[2])]


def sbatch_options(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", script, flags=re.M))


def test_slurm_margin_sweep_is_one_array_of_three_jobs(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    script, tasks = sbatch_of(["launcher=slurm", "margin=0.7,1.7,1.9", "hydra.launcher.partition=gpu",
                               "arch=mobilefacenet", f"hydra.sweep.dir={sweep}"], monkeypatch)
    opts = sbatch_options(script)
    assert opts["array"] == "0-2%3"  # three tasks, all at once (array_parallelism: 16 is an upper bound)
    assert opts["partition"] == "gpu" and opts["time"] == "240" and opts["mem"] == "32GB"
    assert (opts["nodes"], opts["ntasks-per-node"], opts["gpus-per-node"], opts["cpus-per-task"]) == ("1", "1", "1", "8")
    assert opts["job-name"] == "train" and "account" not in opts and "qos" not in opts
    assert opts["output"].startswith(f"{sweep}/.submitit/%A_%a/")
    assert re.search(r"^srun .*-m submitit\.core\._submit ", script, flags=re.M)
    assert [[o for o in t if o.startswith("margin=")] for t in tasks] == [["margin=0.7"], ["margin=1.7"], ["margin=1.9"]]
    assert all("arch=mobilefacenet" in t for t in tasks)


def test_slurm_ddp_fold_row_is_an_array_of_ten_multi_node_jobs(tmp_path, monkeypatch):
    script, tasks = sbatch_of(["launcher=slurm_ddp", "trainer.num_nodes=2", "trainer.devices=4",
                               "experiment=exp2_contrastive_adam", "hydra.launcher.array_parallelism=4",
                               f"hydra.sweep.dir={tmp_path}/sweep"], monkeypatch)
    opts = sbatch_options(script)
    assert opts["array"] == "0-9%4"  # ten folds, four at a time
    assert (opts["nodes"], opts["ntasks-per-node"], opts["gpus-per-node"]) == ("2", "4", "4")
    assert [[o for o in t if o.startswith("data.test_fold=")] for t in tasks] == [[f"data.test_fold={k}"] for k in range(10)]
