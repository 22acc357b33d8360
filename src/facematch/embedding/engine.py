"""The embedding engine's settings: the ``embed`` config group (``conf/embed/default.yaml``) as one frozen,
typed object, checked when built, before any work (as :class:`facematch.eval.verification.Protocol` is the
``protocol`` group).

Built once per job (:meth:`EngineSettings.from_config`) and handed to every embedding pass: facematch-eval,
per-fold scoring, calibration, the frozen-trunk feature store and the distillation teacher. What a pass ran
is :meth:`EngineSettings.resolved` (``auto`` device and precision made concrete on this machine, fp32 for an
ONNX model, which onnxruntime computes in fp32): the embedder resolves it once and records that object, so a
recorded precision is the one that ran. The defaults are those of ``conf/embed/default.yaml``, whose comments
explain each knob (tests/unit/test_engine.py holds the two equal).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from facematch.errors import FacematchError
from facematch.utils.hardware import DEFAULT_PRECISION, DEVICES, PRECISIONS, resolve_device, resolve_precision


@dataclass(frozen=True)
class EngineSettings:
    """One ``embed`` config node: how every embedding pass runs."""

    batch_size: int = 128
    num_workers: int | str = "auto"  # crop-decoding workers: a count or auto
    device: str = "auto"  # auto | cpu | cuda (cuda:N)
    precision: str = DEFAULT_PRECISION  # fp32 | bf16 | auto
    runtime: str = "auto"  # auto | eager | fused | jit | onnx
    cache: bool = True  # the on-disk embedding cache
    cache_dir: str | None = None  # where it lives (the config: ${paths.cache_dir}/embeddings)
    align_raw: bool = True  # raw photos are detected and aligned before they are scored
    progress: bool = True
    input: Mapping[str, Any] | None = None  # an ONNX model's stated input (facematch.models.onnx_stated)

    def __post_init__(self) -> None:
        from facematch.models.inference import RUNTIMES  # torch: loaded when settings are built

        problems = []
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            problems.append(f"embed.batch_size={self.batch_size!r} (a whole number, at least 1)")
        workers = self.num_workers
        if workers != "auto" and not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0):
            problems.append(f"embed.num_workers={workers!r} (auto or a whole number, at least 0)")
        device = str(self.device).lower()
        if device not in DEVICES and not device.startswith("cuda:"):
            problems.append(f"embed.device={self.device!r} (choose {' | '.join(DEVICES)})")
        if str(self.precision).lower() not in PRECISIONS:
            problems.append(f"embed.precision={self.precision!r} (choose {' | '.join(PRECISIONS)})")
        if self.runtime not in RUNTIMES:
            problems.append(f"embed.runtime={self.runtime!r} (choose {' | '.join(RUNTIMES)})")
        if problems:
            raise FacematchError("bad embed setting: " + "; ".join(problems))
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "precision", str(self.precision).lower())
        if self.input is not None:
            object.__setattr__(self, "input", dict(self.input))

    @classmethod
    def from_config(cls, node: Any = None, **overrides: Any) -> "EngineSettings":
        """The settings of an ``embed`` node (a DictConfig, a dict, None: the defaults, or already settings),
        with ``overrides`` (field names) on top. An unknown key is a user error naming the known ones."""
        if isinstance(node, EngineSettings):
            return replace(node, **overrides) if overrides else node
        if node is None:
            values: dict[str, Any] = {}
        else:
            from omegaconf import DictConfig, OmegaConf

            values = dict(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node)
        values.pop("_target_", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FacematchError(f"embed.{unknown[0]} is not an engine setting (known: {', '.join(sorted(known))})")
        return cls(**{**values, **overrides})

    @property
    def cache_path(self) -> str | None:
        """The embedding cache's folder, or None when the cache is off."""
        return str(self.cache_dir) if self.cache and self.cache_dir else None

    def resolved(self, *, onnx: bool = False) -> "EngineSettings":
        """These settings as they run on this machine: ``device`` and ``precision`` concrete (``auto``
        resolved), fp32 for an ONNX model (``onnx``, or ``runtime: onnx``: onnxruntime computes in fp32)."""
        device = resolve_device(self.device)
        precision = "fp32" if onnx or self.runtime == "onnx" else resolve_precision(self.precision, device)
        return replace(self, device=device, precision=precision)

    def as_dict(self) -> dict:
        return asdict(self)
