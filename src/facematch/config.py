"""Locating the Hydra config tree and turning config nodes into objects (shared by train and eval)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facematch.errors import FacematchError
from facematch.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def train_precision(name: str = "auto") -> str:
    """Lightning ``precision`` for ``trainer.precision: ${train_precision:auto}``: ``auto`` is bf16-mixed on a
    CUDA GPU that supports bf16 and 32-true elsewhere (a CPU without native bf16 would emulate it, far
    slower); other values pass through."""
    if str(name) != "auto":
        return str(name)
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


if not OmegaConf.has_resolver("train_precision"):
    OmegaConf.register_new_resolver("train_precision", train_precision)  # omegaconf 2.3 (hydra-core 1.3 pins <2.4)


#: Keys and group options renamed by the naming pass: an old one stops the run with one line naming the new.
RENAMED_KEYS = {f"data.features.{knob}": f"embed.{knob}"  # one engine group serves every embedding pass
                for knob in ("batch_size", "num_workers", "device", "precision", "runtime")}
RENAMED_OPTIONS = {"data": {"lfw": "lfw_photos", "lfw_aligned": "lfw_aligned112", "lfw_own_aligned": "lfw_photos_mtcnn"}}


def check_overrides(overrides: Sequence[str]) -> None:
    """A :class:`FacematchError` naming the new name for the first command-line override (``key=value``,
    ``+key=value``, ``group=a,b`` in a multirun) that sets a renamed key or selects a renamed option. Run
    before Hydra composes: Hydra would refuse them with several lines that do not name the new key."""
    for item in overrides:
        if item.startswith("-"):  # Hydra's own flags (-m, --config-name, ...)
            continue
        key, sep, value = item.lstrip("+~").partition("=")
        key = key.removeprefix("override ").strip()
        for old, new in RENAMED_KEYS.items():
            if key == old or key.startswith(old + "."):
                raise FacematchError(f"{old} is now {new} (one engine group for every embedding pass): pass {new}={value}")
        renamed = RENAMED_OPTIONS.get(key.lstrip("/"), {})
        for choice in value.split(",") if sep else ():
            if choice.strip() in renamed:
                raise FacematchError(f"{key}={choice.strip()} is now {key}={renamed[choice.strip()]} "
                                     "(the data options are named for what they read)")


def check_config(cfg: DictConfig) -> None:
    """The same for a composed config (keys an experiment file or ``+key=`` added)."""
    for old, new in RENAMED_KEYS.items():
        if OmegaConf.select(cfg, old, default=None) is not None:
            raise FacematchError(f"{old} is now {new} (one engine group for every embedding pass): set {new} instead")


def config_dir() -> str:
    """The repository's ``conf/`` in a source checkout, else the copy shipped inside the package."""
    here = Path(__file__).resolve()
    repo_conf = here.parents[2] / "conf"
    if (repo_conf / "train.yaml").is_file():
        return str(repo_conf)
    return str(here.parent / "conf")


def has_target(node: Any) -> bool:
    return isinstance(node, DictConfig) and "_target_" in node


def instantiate_optional(node: Any):
    """``instantiate(node)`` for a node with a ``_target_``; None for null / empty (e.g. scheduler=none)."""
    return instantiate(node) if has_target(node) else None


def instantiate_collection(node: DictConfig | None) -> list:
    """Callbacks / loggers: every child with a ``_target_``."""
    if not node:
        return []
    return [instantiate(child) for child in node.values() if has_target(child)]


def write_json(path: str | Path, payload: dict) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n")


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def instantiate_node(node: Any, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``; a :class:`FacematchError` raised inside a target comes out as
    itself (one line for the user), not wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, FacematchError):
            raise cause from None
        raise
