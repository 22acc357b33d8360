"""Batched, cached inference: image paths (or uint8 crops) -> embeddings, each image computed once.

The path: uint8 NHWC crops -> the backbone's normalisation -> [crop, mirror] views (:mod:`.flip`) -> an
inference copy of ``model`` (:mod:`facematch.models.inference`: device, precision, runtime) -> per-view
outputs, cached on disk (:mod:`.cache`) -> optional ``tail`` per view (e.g. a trained head on a frozen
backbone, so its backbone outputs are shared with every head trained on it) -> the flip combination.
Outputs are as the model gives them (raw features or a head's projection); callers normalise.

Raw photos (``FaceSource(mode="align")``) are detected and aligned into the crop cache first, on all
cores (``source.prepare``); crops are then decoded inline or in workers as
:func:`facematch.utils.hardware.plan_workers` decides, never oversubscribing the model's cores.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facematch.embedding.cache import MERGE_ABOVE, EmbeddingCache, make_cache_key
from facematch.models.loading import state_dict_sha256
from facematch.embedding.flip import check_flip, combine_views, n_views, with_mirrors
from facematch.errors import FacematchError
from facematch.models.base import BackboneSpec
from facematch.models.onnx_runtime import OnnxModule
from facematch.models.inference import InferenceModel, build, choose
from facematch.embedding.engine import EngineSettings
from facematch.utils.hardware import one_thread_worker, plan_workers
from facematch.utils.io import NO_STAMP, stamp_before_reading

log = logging.getLogger(__name__)


def normalize_batch(images: np.ndarray | torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    """A uint8 NHWC batch -> the backbone's normalised float NCHW input (no augmentation)."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:  # e.g. crops memory-mapped from a cache
        images = images.copy()  # torch warns on read-only arrays; the uint8 copy is small beside the float one
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


class CropFiles(Dataset):
    """``i -> (i, uint8 HxWx3 tensor | None, error | None)`` read through a crop source; user errors travel
    back to the main process to be raised there."""

    def __init__(self, source, rel_paths: Sequence[str]):
        self.source = source
        self.rel_paths = list(rel_paths)

    def __len__(self) -> int:
        return len(self.rel_paths)

    def __getitem__(self, i: int):
        try:
            crop = np.require(self.source(self.rel_paths[i]), np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
            return i, torch.from_numpy(crop), None
        except FacematchError as err:
            return i, None, err


def _collate(items):
    for _, _, err in items:
        if err is not None:
            return None, None, err
    idx = torch.tensor([i for i, _, _ in items], dtype=torch.long)
    return idx, torch.stack([c for _, c, _ in items]), None


class Embedder:
    """Embeds uint8 crops (:meth:`embed_arrays`) or image paths read through ``source`` (:meth:`embed`).

    ``model`` maps a normalised NCHW batch to (N, D) features; it is never changed: the embedder runs an
    inference copy as ``engine`` says (:class:`~facematch.embedding.engine.EngineSettings`, the ``embed``
    config group: device, precision, runtime, batch size, workers, cache), with any of its fields given as
    keywords on top (``precision="fp32"``, ``cache_dir=...``). The settings are resolved once, here
    (:attr:`engine`: ``auto`` made concrete, fp32 for ONNX); :attr:`ran` is what ran, as recorded.
    ``source`` is a callable ``rel_path -> uint8 HxWx3 crop`` of ``spec.input_size`` with a ``root`` folder (a
    :class:`~facematch.data.source.FaceSource`). ``tail`` (a module or callable on (N, D) tensors) runs on the
    model's per-view outputs (cached when the cache is on), per view, before the flip combination.
    """

    def __init__(self, model: nn.Module, spec: BackboneSpec, source: Any = None, *, tail: Callable | None = None,
                 flip: str = "concat", engine: EngineSettings | None = None, fingerprint: str | None = None,
                 save_every: int = 1024, **settings: Any):
        self.model, self.spec, self.source, self.tail = model, spec, source, tail
        # the one resolution of the engine settings: everything below reads it, and the stats record it
        self.engine = EngineSettings.from_config(engine, **settings).resolved(onnx=isinstance(model, OnnxModule))
        self.batch_size, self.num_workers = self.engine.batch_size, self.engine.num_workers
        self.runtime, self.precision, self.device_name = self.engine.runtime, self.engine.precision, self.engine.device
        self.flip = check_flip(flip)
        self.views = n_views(flip)
        self.device = torch.device(self.device_name)
        self.bf16 = self.precision == "bf16"
        self.progress = self.engine.progress
        self.save_every = max(1, int(save_every))
        self.cache_dir, self._fingerprint = self.engine.cache_path, fingerprint
        self._cache: EmbeddingCache | None = None
        self.merge_cache = True  # merge the cache's parts when there are many (off on a sharded job's other ranks)
        self.stats: dict[str, Any] = {}
        self._net: InferenceModel | None = None
        self._expected = 0  # images the current job will embed (auto runtime: is tracing worth it?)

    @property
    def ran(self) -> dict[str, str]:
        """``{"device", "precision", "runtime"}`` as this embedder runs them: what a job records. The runtime
        is the one built (``auto``: the one chosen) once the model has run; None until then (a cache hit)."""
        runtime = self._net.runtime if self._net is not None else None
        return {"device": self.engine.device, "precision": self.engine.precision, "runtime": runtime}

    # -- cache ------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the model's weights (its state dict): the weights part of the cache key."""
        if self._fingerprint is None:
            self._fingerprint = state_dict_sha256(self.model.state_dict())
        return self._fingerprint

    @property
    def cache(self) -> EmbeddingCache | None:
        if self._cache is None and self.cache_dir and self.source is not None:
            key, meta = make_cache_key(self.fingerprint, self.source, self.spec, views=self.views, bf16=self.bf16)
            self._cache = EmbeddingCache(self.cache_dir, key, meta)
        return self._cache

    # -- the model path ---------------------------------------------------------------------------------
    def _inference_model(self, x: torch.Tensor) -> InferenceModel:
        if self._net is None:
            if self.runtime == "auto":
                self._net = choose(self.model, x, self.device, n_images=self._expected, bf16=self.bf16)
            else:
                self._net = build(self.model, self.runtime, self.device, bf16=self.bf16, example=x)
            self.stats.update(self.ran)
        return self._net

    @torch.inference_mode()
    def forward_views(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, V, D) float32 model outputs per view (V = 2 with a flip test)."""
        x = normalize_batch(crops, self.spec)
        if tuple(x.shape[2:]) != tuple(self.spec.input_size):
            raise FacematchError(
                f"crops are {tuple(x.shape[2:])} but {self.spec.name} takes {tuple(self.spec.input_size)} (H, W); "
                "check data.preprocess (template) for this backbone"
            )
        n = x.shape[0]
        x = with_mirrors(x, self.flip)
        out = self._inference_model(x)(x)
        return np.ascontiguousarray(out.view(self.views, n, -1).transpose(0, 1).cpu().numpy())

    @torch.inference_mode()
    def finish(self, views: np.ndarray) -> np.ndarray:
        """(N, V, D) per-view outputs -> the tail per view (if any) -> (N, D') flip combination."""
        if self.tail is not None and len(views):
            n, v, d = views.shape
            flat = torch.from_numpy(np.ascontiguousarray(views, np.float32)).view(n * v, d)
            views = torch.cat([self.tail(flat[i: i + 4096]) for i in range(0, n * v, 4096)]).view(n, v, -1).numpy()
        return np.ascontiguousarray(combine_views(views, self.flip), dtype=np.float32)

    def embed_arrays(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Embed in-memory crops (no cache), ``batch_size`` at a time."""
        return self.finish(self.views_of_arrays(crops))

    def views_of_arrays(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, V, D) per-view outputs of in-memory crops (no cache), ``batch_size`` at a time: what
        :meth:`finish` turns into embeddings (and a quality head reads, plain view)."""
        arr = np.asarray(crops, dtype=np.uint8) if not isinstance(crops, np.ndarray) else crops
        self._expected = max(self._expected, len(arr))
        return np.concatenate(
            [self.forward_views(arr[i: i + self.batch_size]) for i in range(0, len(arr), self.batch_size)])

    # -- paths, through the cache -------------------------------------------------------------------------
    def _loader(self, rel_paths: Sequence[str]) -> DataLoader:
        """Crops decoded inline or in worker processes of one torch thread each (see
        :func:`~facematch.utils.hardware.plan_workers`), the model running in this process; the global random
        streams are left untouched."""
        workers, threads = plan_workers(self.num_workers, self.device.type, -(-len(rel_paths) // self.batch_size))
        kw: dict[str, Any] = {"prefetch_factor": 2, "worker_init_fn": one_thread_worker} if workers else {}
        self.stats.update(workers=workers, model_threads=threads)
        torch.set_num_threads(threads)  # restored by _compute when the job ends
        # its own generator: a DataLoader draws its workers' base seed from the global torch RNG otherwise, so a
        # job that embeds (a cold cache) would train on other random draws than one that reads the cache
        return DataLoader(CropFiles(self.source, rel_paths), batch_size=self.batch_size, shuffle=False,
                          num_workers=workers, collate_fn=_collate, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator(), **kw)

    def embed(self, rel_paths: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """``(emb, paths)`` for the distinct ``rel_paths`` (first-seen order); cached ones are not recomputed."""
        views, paths = self.embed_views(rel_paths)
        return (self.finish(views) if paths else np.zeros((0, 0), np.float32)), paths

    def embed_views(self, rel_paths: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """``(views (N, V, D), paths)``: the model's per-view outputs for the distinct ``rel_paths``."""
        if self.source is None:
            raise ValueError("Embedder.embed needs a source (rel_path -> crop)")
        t0 = time.perf_counter()
        paths = list(dict.fromkeys(rel_paths))
        # entries are tied to root/path (none for in-memory sources; a packed set's digest is in its key)
        root = getattr(self.source, "stamp_root", getattr(self.source, "root", None))
        cache = self.cache
        done = cache.load(root, paths) if cache is not None else {}
        todo = [p for p in paths if p not in done]
        self.stats = {"n_images": len(paths), "cache_hits": len(paths) - len(todo), "computed": 0,
                      **self.ran,  # what ran (cached entries: their key's, which holds the precision)
                      "cache_dir": str(cache.dir) if cache else None, **(cache.stats if cache is not None else {})}
        if todo:
            self._compute(todo, done, root)
        self.stats["cache_hit"] = bool(paths) and not todo
        self.stats["seconds"] = time.perf_counter() - t0
        if todo and self.stats["computed"]:
            self.stats["images_per_s"] = self.stats["computed"] / self.stats["seconds"]
        if not paths:
            return np.zeros((0, self.views, 0), np.float32), []
        flat = np.stack([done[p] for p in paths]).astype(np.float32, copy=False)
        return flat.reshape(len(paths), self.views, -1), paths

    def _compute(self, todo: list[str], done: dict[str, np.ndarray], root: str | os.PathLike | None = None) -> None:
        cache = self.cache
        stamps = {p: stamp_before_reading(Path(root) / p) for p in todo} if cache is not None and root is not None else {}
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="img", desc=f"embed {self.spec.name}", file=sys.stderr,
                       dynamic_ncols=True, mininterval=1.0)
        pending_paths: list[str] = []
        pending: list[np.ndarray] = []

        def flush():
            if cache is not None and pending_paths:
                cache.add(pending_paths, np.concatenate(pending), [stamps.get(p, NO_STAMP) for p in pending_paths])
            pending_paths.clear()
            pending.clear()

        prepare = getattr(self.source, "prepare", None)
        if prepare is not None:  # raw photos: detect and align every missing crop first, on all cores
            self.stats["prepare"] = prepare(todo, progress=self.progress)
        self._expected = max(self._expected, len(todo))
        threads = torch.get_num_threads()
        try:
            for idx, crops, err in self._loader(todo):
                if err is not None:
                    raise err
                feats = self.forward_views(crops).reshape(len(idx), -1)  # a cache row holds every view
                names = [todo[i] for i in idx.tolist()]
                done.update(zip(names, feats))
                pending_paths.extend(names)
                pending.append(feats)
                self.stats["computed"] += len(names)
                if bar is not None:
                    bar.update(len(names))
                if len(pending_paths) >= self.save_every:
                    flush()
        finally:
            torch.set_num_threads(threads)
            self.stats.update(self.ran)
            flush()  # keep whatever was computed, also on an error or Ctrl-C
            if bar is not None:
                bar.close()
        if cache is not None and self.merge_cache and len(cache.parts()) > MERGE_ABOVE:
            cache.merge()
