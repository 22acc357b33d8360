"""Shared fixtures: real data from $FACEMATCH_DATA_DIR (default ../shared/data), in-process Hydra composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEMATCH_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
WEIGHTS = Path(os.environ.get("FACEMATCH_WEIGHTS_DIR", REPO.parent / "shared" / "weights")).resolve()
os.environ["FACEMATCH_DATA_DIR"] = str(DATA)
os.environ["FACEMATCH_WEIGHTS_DIR"] = str(WEIGHTS)
MFN_WEIGHTS = WEIGHTS / "mobilefacenet_casia_068.ckpt"

# Under pytest-xdist (`-n N`) the workers share the cores: one torch thread each (and in the subprocesses
# they start), or N workers x all-core thread pools spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# Small, fast training settings on a real LFW subset (40 people with 2+ images) for fast_dev_run tests.
FAST = [
    "data.max_identities=40",
    "data.min_images=2",
    "data.train_samples=32",
    "data.val_pairs=16",
    "data.batch_size=8",
    "data.num_workers=0",
    "data.pk.p=4",
    "data.pk.k=2",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert (DATA / "lfw" / "pairs.txt").is_file(), f"real data missing at {DATA}: set FACEMATCH_DATA_DIR"
    return DATA


@pytest.fixture(scope="session")
def lfw_root(data_dir) -> Path:
    return data_dir / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def mfn_weights() -> Path:
    assert MFN_WEIGHTS.is_file(), f"MobileFaceNet weights missing at {MFN_WEIGHTS}"
    return MFN_WEIGHTS


def compose(overrides: list[str], output_dir: Path, config_name: str = "train"):
    """Compose like the CLI does, with a Hydra runtime whose output dir is ``output_dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from facematch.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=[f"hydra.run.dir={output_dir}", *overrides],
                            return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides: str, config_name: str = "train", out: str = "run"):
        return compose(list(overrides), tmp_path / out, config_name)

    return make


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    """Run ``python -m ...`` in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env.pop("FACEMATCH_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
