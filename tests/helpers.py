"""What the unit and integration tests share: where the test data is (and the one line that says it is
missing), in-process Hydra composition, the CLI runner, and small LFW pairs files."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEMATCH_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
WEIGHTS = Path(os.environ.get("FACEMATCH_WEIGHTS_DIR", REPO.parent / "shared" / "weights")).resolve()
os.environ["FACEMATCH_DATA_DIR"] = str(DATA)
os.environ["FACEMATCH_WEIGHTS_DIR"] = str(WEIGHTS)
MFN_WEIGHTS = WEIGHTS / "mobilefacenet_casia_068.ckpt"

# ---------------------------------------------------------------------------------------------------
# the real data the integration tests read

# Under FACEMATCH_DATA_DIR (../shared/data, whose README.md describes each): what the integration tests read.
TEST_DATA = ("lfw/pairs.txt", "lfw/lfw-deepfunneled", "lfw-aligned-112", "seed-splits", "vggface2-samples/tight_crop")
# Set by .ci/run: an integration test that would be skipped (its data missing) fails instead.
REQUIRE_DATA = "FACEMATCH_REQUIRE_DATA"


def missing_data(root: Path = DATA) -> str | None:
    """One line saying what of :data:`TEST_DATA` is missing under ``root`` and how to point at it; None
    when it is all there."""
    gone = [rel for rel in TEST_DATA if not (root / rel).exists()]
    if not gone:
        return None
    what = f"test data not found at {root}" if not root.is_dir() else f"test data incomplete at {root}: no {', '.join(gone)}"
    return (f"{what} (set FACEMATCH_DATA_DIR=DIR holding {', '.join(TEST_DATA)}; get LFW with `uv run facematch-data "
            "download lfw --dest DIR/lfw`, the rest as docs/testing.md says)")


def missing_weights(path: Path = MFN_WEIGHTS) -> str | None:
    """One line naming the missing weight file and how to point at it; None when it is there."""
    if path.is_file():
        return None
    return (f"MobileFaceNet weights not found at {path} (set FACEMATCH_WEIGHTS_DIR=DIR holding {path.name}; get it with "
            "`uv run facematch-data download mobilefacenet --dest DIR`)")


def data_required(env: dict | None = None) -> bool:
    """Whether ``FACEMATCH_REQUIRE_DATA`` is set (to anything but empty, 0, false or no)."""
    value = (os.environ if env is None else env).get(REQUIRE_DATA, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def skip_as_failure(reason: str) -> str:
    """The failure an integration test's skip becomes under ``FACEMATCH_REQUIRE_DATA=1``: the skip's own
    line, and why it fails."""
    return f"{reason} [{REQUIRE_DATA}=1: integration tests may not be skipped]"


# ---------------------------------------------------------------------------------------------------
# Hydra, the CLI, configs

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


def config_options(group: str) -> list[str]:
    """The options of one config group (``conf/<group>/*.yaml``)."""
    from facematch.config import config_dir

    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


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


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    """Run ``python -m ...`` in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env.pop("FACEMATCH_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def error_line(stderr: str) -> str:
    """The one ``error:`` line a failed command prints (progress notes may precede it), no traceback."""
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert stderr.strip().endswith(lines[0])
    return lines[0]


@functools.lru_cache(maxsize=1)
def mobilefacenet_spec():
    from facematch.models.backbones import build_backbone

    return build_backbone("mobilefacenet").spec


def download(dest: Path, url: str, *extra: str) -> int:
    """``facematch-data download lfw --dest DEST --base-url URL``, in process."""
    from facematch.cli.data import main

    return main(["download", "lfw", "--dest", str(dest), "--base-url", url, "--no-progress", *extra])


def datamodule(root, **kw):
    """A small FaceDataModule for MobileFaceNet crops, augmented, seeded."""
    from facematch.data.datamodule import FaceDataModule

    base = dict(root=str(root), spec=mobilefacenet_spec(), num_workers=0, batch_size=4,
                train_samples=8, val_pairs=8, seed=1,
                augment={"enabled": True, "hflip": 0.5, "rotation": 10, "translate": 0.05, "scale": [0.9, 1.1],
                         "color_jitter": 0.2})
    base.update(kw)
    return FaceDataModule(**base)


# ---------------------------------------------------------------------------------------------------
# small pairs files cut from LFW's pairs.txt


def tiny_pairs(data_dir: Path, out: Path, per_class: int = 4) -> Path:
    """An LFW-format pairs file: the first ``per_class`` matched + mismatched lines of folds 0 and 1."""
    lines = (data_dir / "lfw" / "pairs.txt").read_text().splitlines()
    body = []
    for fold in (0, 1):
        start = 1 + fold * 600
        body += lines[start : start + per_class] + lines[start + 300 : start + 300 + per_class]
    out.write_text(f"2\t{per_class}\n" + "\n".join(body) + "\n")
    return out


def mini_pairs(data_dir: Path, path: Path, per_fold: int = 6) -> Path:
    """A 2-fold LFW-format pairs file: the first ``per_fold`` matched and mismatched pairs of folds 0 and 1."""
    from facematch.data.pair_files import read_lfw_pairs

    pairs = read_lfw_pairs(data_dir / "lfw" / "pairs.txt")
    lines = [f"2\t{per_fold}"]
    for fold in (0, 1):
        rows = [p for p in pairs if p.fold == fold]
        for p in [r for r in rows if r.same][:per_fold] + [r for r in rows if not r.same][:per_fold]:
            na, ia = p.a.split("/")[0], int(p.a[-8:-4])
            nb, ib = p.b.split("/")[0], int(p.b[-8:-4])
            lines.append(f"{na}\t{ia}\t{ib}" if p.same else f"{na}\t{ia}\t{nb}\t{ib}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------
# the unit tests' guard


def _importing() -> bool:
    """Whether a module is being imported somewhere up the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class UnitIsolationError(RuntimeError):
    """A unit test started a subprocess or read the real data: it belongs in tests/integration."""


class IsolationGuard:
    """An audit hook (``sys.addaudithook``) that, while ``active``, refuses subprocesses and process
    spawning (except while a module is first imported), and opening or listing anything under ``roots``;
    each refusal is also kept in ``violations``, so that a test which swallows the error still fails
    (tests/unit/conftest.py)."""

    PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
                                "os.fork", "os.forkpty", "pty.spawn"})
    READ_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})

    def __init__(self, roots):
        # a data folder holding the repository (or /) cannot be told apart from the repository: not guarded
        self.roots = [str(r) for r in roots if not REPO.is_relative_to(r)]
        self.active = False
        self.violations: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event in self.PROCESS_EVENTS:
            if _importing():  # a library's first import probing the system (torch.cuda runs ldconfig): not the test
                return
            what = f"started a process ({event} {args[0] if args else ''})"
        elif event in self.READ_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if not any(path == root or path.startswith(root + os.sep) for root in self.roots):
                return
            what = f"read {path}"
        else:
            return
        self.violations.append(what)
        raise UnitIsolationError(f"a unit test {what}: move it to tests/integration")


# ---------------------------------------------------------------------------------------------------
# what a DDP rank receives


class RecordBatchLabels:
    """A Lightning callback (``+callbacks.record._target_=tests.helpers.RecordBatchLabels``) that appends
    each training batch's labels, with rank, epoch and step, to ``out_dir/labels_rank<r>.jsonl``."""

    def __new__(cls, out_dir: str):
        import json

        from lightning.pytorch.callbacks import Callback

        class _Record(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                path = Path(out_dir) / f"labels_rank{trainer.global_rank}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                row = {"epoch": trainer.current_epoch, "step": batch_idx, "labels": batch[1].tolist()}
                with path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")

        return _Record()
