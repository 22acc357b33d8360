"""Locating the Hydra config tree and turning config nodes into objects (shared by train and eval)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facematch.errors import FacematchError
from facematch.utils.io import atomic_write_text
from facematch.utils.renamed import check_renamed

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


#: The units a loss can read the top-level ``margin`` in (each ``conf/loss/*.yaml`` declares its own as
#: ``margin_unit``; null: the loss reads no margin), with the range a margin makes sense in:
#: ``{unit: (least, most, what it is)}``.
MARGIN_UNITS = {
    "distance": (0.0, 2.0, "a Euclidean distance between L2-normalised embeddings (0..2)"),
    "radians": (0.0, math.pi / 2, "an angle in radians (0..pi/2)"),
    "cosine": (0.0, 1.0, "a cosine (0..1)"),
}


def check_margin(cfg: DictConfig) -> None:
    """The top-level ``margin`` within the range of the unit the selected loss declares (``margin_unit``);
    a config without a loss (facematch-eval's) or whose loss reads no margin passes."""
    unit = cfg.get("margin_unit") if "loss" in cfg else None
    if unit is None:
        return
    loss = cfg.get("loss_name") or "the loss"
    if unit not in MARGIN_UNITS:
        raise FacematchError(f"margin_unit={unit!r} ({loss}) is not a margin unit; "
                             f"choose {' | '.join(MARGIN_UNITS)} (or null: the loss reads no margin)")
    least, most, what = MARGIN_UNITS[unit]
    margin = cfg.get("margin")
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not least <= float(margin) <= most:
        raise FacematchError(f"margin={margin} is outside {loss}'s range: it reads margin as {what}; "
                             f"pass margin= between {least:g} and {most:.4g}")


def check_config(cfg: DictConfig) -> None:
    """The checks of a composed config, before any work: keys and options renamed since (one line naming the
    new one, :mod:`facematch.utils.renamed`) and the margin a loss reads (its declared unit's range,
    :func:`check_margin`)."""
    check_renamed(cfg)
    check_margin(cfg)


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
