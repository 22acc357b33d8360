"""The back-compatibility guard: keys, options and config nodes renamed or moved since, and the checks that
stop a run using an old one with one line naming the new one (before Hydra composes: :func:`check_overrides`;
on a composed config: :func:`check_renamed`, part of :func:`facematch.config.check_config`)."""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from facematch.errors import FacematchError

#: Keys and group options renamed by the naming pass: an old one stops the run with one line naming the new.
RENAMED_KEYS = {f"data.features.{knob}": f"embed.{knob}"  # one engine group serves every embedding pass
                for knob in ("batch_size", "num_workers", "device", "precision", "runtime")}
#: Config nodes that became a group of their own: set, they would be ignored, so the run stops naming the new one.
MOVED_NODES = {"eval.align": "align.* (conf/align/mtcnn.yaml, shared with training), e.g. align.select=largest"}
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


def check_renamed(cfg: DictConfig) -> None:
    """The same for a composed config (keys an experiment file or ``+key=`` added), and the config nodes
    that moved to a group of their own (:data:`MOVED_NODES`): they would be ignored."""
    for old, new in RENAMED_KEYS.items():
        if OmegaConf.select(cfg, old, default=None) is not None:
            raise FacematchError(f"{old} is now {new} (one engine group for every embedding pass): set {new} instead")
    for old, new in MOVED_NODES.items():
        if OmegaConf.select(cfg, old, default=None) is not None:
            raise FacematchError(f"{old}.* is now {new}")
