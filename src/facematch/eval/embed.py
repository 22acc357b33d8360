"""Batched, cached inference: image paths -> embeddings, each image embedded once per model and preprocessing.

Inference path (:meth:`Embedder.forward_uint8`): uint8 NHWC crops -> the backbone's normalisation ->
an inference copy of the model (:mod:`facematch.models.inference`: device, precision, runtime) -> float32.
Flip test: the batch and its horizontal mirror go through the model together, and the two outputs are
summed (``flip="sum"``) or concatenated (``flip="concat"``, twice the dimension). Outputs are the model's
as they are (raw backbone features, or a head's projection); callers normalise.

Raw photos (``FaceSource(mode="align")``) are detected and aligned into the crop cache first, on all
cores (``source.prepare``); crops are then decoded inline or in workers as
:func:`facematch.utils.hardware.plan_workers` decides, never oversubscribing the model's cores.

Embedding cache (``cache_dir/<key>/``): the key names everything an embedding depends on: the weights
fingerprint (sha256 of the weights file, or of the checkpoint's state dict), ``FaceSource.key`` plus the
source root and alignment settings, the flip mode, the dtype (fp32 / bf16) and the input spec
(:func:`make_cache_key`). A key's folder holds ``meta.json`` (those components, readable) and
``part-*.npz`` files, each ``{"paths": str array, "emb": float32 (n, D), "src_size", "src_mtime_ns":
int64 (n,)}`` (the size and modification time of each image's source file when it was embedded; -1 for
sources without files), loaded with ``allow_pickle=False``. An entry is used only while its source file
(``source.root / path``) still has that size and time; otherwise, or when its part has no stamps (an
older format), it is embedded again (counted in ``Embedder.stats``: ``stale``, ``old_format``). Parts are
written atomically every ``save_every`` new embeddings (and on an interrupt), so a killed run loses at
most one part of work and the next run embeds only what is missing; many small parts are merged into one
at the end of a run.

Users: ``facematch-eval`` (:mod:`facematch.eval.verify`), the frozen-backbone feature cache
(:mod:`facematch.data.features`), per-fold scoring and ``facematch-compare`` use :class:`Embedder`;
:func:`embed_paths` is the one-call form::

    emb, paths = embed_paths(model, spec, source, rel_paths, flip="none", cache_dir=".cache/facematch/embeddings",
                             cache_key=make_cache_key(fingerprint, source, spec, flip="none"))

``emb[i]`` is the embedding of ``paths[i]`` (``rel_paths`` without duplicates, first-seen order).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facematch.data.transforms import normalize_batch
from facematch.errors import FacematchError
from facematch.models.backbones import BackboneSpec
from facematch.models.inference import InferenceModel, build, check_runtime, choose
from facematch.utils.hardware import one_thread_worker, plan_workers, resolve_device, resolve_precision
from facematch.utils.io import (
    NO_STAMP,
    atomic_write,
    atomic_write_text,
    digest,
    resolved,
    stamp_before_reading,
    stamp_problem,
)

log = logging.getLogger(__name__)

FLIP_MODES = ("none", "sum", "concat")
CACHE_FORMAT = "facematch-embeddings/2"
MERGE_ABOVE = 8  # parts; more than this are merged into one at the end of a run


def check_flip(flip: str) -> str:
    if flip not in FLIP_MODES:
        raise FacematchError(f"flip={flip!r} is unknown; choose one of: {', '.join(FLIP_MODES)}")
    return flip


def dtype_name(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"


def resolve(device: str | None = "auto", precision: str | None = "auto") -> tuple[str, str]:
    """``(device, precision)`` as an embedder will run them: what ``auto`` means on this machine."""
    dev = resolve_device(device)
    return dev, resolve_precision(precision, dev)


# ---------------------------------------------------------------------------------------------------
# cache key and on-disk cache


def source_description(source: Any) -> dict:
    """What a FaceSource contributes to the cache key: its ``key``, resolved root and alignment settings."""
    root = getattr(source, "root", None)
    return {
        "source": getattr(source, "key", type(source).__name__),
        "root": resolved(root) if root is not None else None,
        "align": {k: v for k, v in sorted((getattr(source, "align_kwargs", None) or {}).items())},
    }


def make_cache_key(
    fingerprint: str, source: Any, spec: BackboneSpec, *, flip: str = "none", bf16: bool = False, extra: dict | None = None
) -> tuple[str, dict]:
    """``(key, components)``: a folder name (readable prefix + digest of every component) and the components.

    ``fingerprint`` is the sha256 of the weights (see :mod:`facematch.eval.model`); ``extra`` adds anything
    else the caller's features depend on (e.g. a head's settings).
    """
    check_flip(flip)
    comp = {
        "format": CACHE_FORMAT,
        "weights_sha256": fingerprint,
        **source_description(source),
        "flip": flip,
        "dtype": dtype_name(bf16),
        "arch": spec.name,
        "input_size": list(spec.input_size),
        "mean": list(spec.mean),
        "std": list(spec.std),
        **({"extra": extra} if extra else {}),
    }
    src = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(comp["source"]))
    key = f"{spec.name}-{fingerprint[:12]}-{src}-flip_{flip}-{comp['dtype']}-{digest(comp)}"
    return key, comp


class EmbeddingCache:
    """``root/key/``: ``meta.json`` + atomically written ``part-*.npz`` files of (paths, float32 matrix,
    source-file stamps). ``stats`` counts what the last :meth:`load` dropped: ``stale`` entries (source
    file changed or gone) and ``old_format`` ones (parts without stamps)."""

    def __init__(self, root: str | os.PathLike, key: str, meta: dict | None = None):
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad cache key {key!r}")
        self.dir = Path(root).expanduser() / key
        self.key = key
        self.meta = meta or {}
        self.stats: dict[str, int] = {"stale": 0, "old_format": 0}

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.npz")) if self.dir.is_dir() else []

    def entries(self) -> tuple[dict[str, tuple[np.ndarray, tuple[int, int]]], int]:
        """``({rel_path: (vector, (src_size, src_mtime_ns))}, n)``: every stamped entry (the newest part
        wins) and the number ``n`` of entries in parts without stamps (older format, never used).
        Unreadable parts are skipped (and later rewritten)."""
        out: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
        unstamped = 0
        for part in self.parts():
            try:
                with np.load(part, allow_pickle=False) as z:
                    paths, emb = z["paths"], z["emb"]
                    if "src_size" not in z.files or "src_mtime_ns" not in z.files:
                        unstamped += len(paths)
                        continue
                    size, mtime = z["src_size"], z["src_mtime_ns"]
            except Exception as err:  # a damaged part costs a re-embed, never a crash
                log.warning("ignoring unreadable embedding cache part %s (%s)", part, err)
                continue
            if emb.ndim != 2 or not emb.shape[0] == paths.shape[0] == size.shape[0] == mtime.shape[0]:
                log.warning("ignoring malformed embedding cache part %s", part)
                continue
            out.update(zip(paths.tolist(), zip(emb, zip(size.tolist(), mtime.tolist()))))
        return out, unstamped

    def load(self, src_root: str | os.PathLike | None = None, paths: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Cached ``{rel_path: vector}`` (only ``paths`` when given). With ``src_root``, an entry is kept only
        while ``src_root/rel_path`` has the size and modification time it had when embedded."""
        entries, unstamped = self.entries()
        if paths is not None:
            entries = {p: entries[p] for p in paths if p in entries}
        out = {}
        for rel, (vec, stamp) in entries.items():
            if src_root is None or stamp_problem(Path(src_root) / rel, stamp) is None:
                out[rel] = vec
        self.stats = {"stale": len(entries) - len(out), "old_format": unstamped}
        return out

    def _write_meta(self) -> None:
        meta = self.dir / "meta.json"
        if not meta.is_file():
            atomic_write_text(meta, json.dumps({"key": self.key, **self.meta}, indent=2, sort_keys=True, default=str) + "\n")

    def add(self, paths: Sequence[str], emb: np.ndarray, stamps: Sequence[tuple[int, int]] | None = None) -> Path | None:
        """Write one new part atomically; returns its path (None when there is nothing to write).

        ``stamps``: ``(st_size, st_mtime_ns)`` of each path's source file, taken before it was read
        (default: none, ``-1``)."""
        if not len(paths):
            return None
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.shape[0] != len(paths):
            raise ValueError(f"{len(paths)} paths but {emb.shape[0]} embeddings")
        st = np.asarray(list(stamps) if stamps is not None else [NO_STAMP] * len(paths), dtype=np.int64).reshape(-1, 2)
        if st.shape[0] != len(paths):
            raise ValueError(f"{len(paths)} paths but {st.shape[0]} source stamps")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_meta()
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        arr_paths = np.asarray(list(paths), dtype=np.str_)
        return atomic_write(self.dir / name, lambda fh: np.savez(fh, paths=arr_paths, emb=emb, src_size=st[:, 0],
                                                                 src_mtime_ns=st[:, 1]))

    def merge(self) -> None:
        """Replace all parts by one (written first, so a reader never sees fewer vectors); parts of an
        older format are dropped."""
        parts = self.parts()
        if len(parts) <= 1:
            return
        data, _ = self.entries()
        if not data:
            return
        paths = list(data)
        new = self.add(paths, np.stack([data[p][0] for p in paths]), [data[p][1] for p in paths])
        for p in parts:
            if p != new:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    def check(self, src_root: str | os.PathLike | None = None) -> dict:
        """Every entry against its source file, without changing anything: ``{"folder", "what", "entries",
        "problems": [(kind, rel_path, why), ...]}`` with kinds ``old-format``, ``foreign`` (source file
        missing, or made from another folder than ``src_root`` when given) and ``stale`` (source changed)."""
        try:
            meta = json.loads((self.dir / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        made_from = meta.get("root")
        out: dict = {"folder": str(self.dir), "what": f"embeddings of {made_from or 'sources without a folder'}",
                     "entries": 0, "problems": []}
        entries, unstamped = self.entries()
        fmt = meta.get("format", CACHE_FORMAT)
        if fmt != CACHE_FORMAT or unstamped:
            out["problems"].append(("old-format", "", (
                f"{self.dir} is an embedding cache in format {fmt!r}, not {CACHE_FORMAT} ({unstamped} embeddings "
                "without source stamps, so a changed or swapped source would go unnoticed); it is never read: "
                "delete that folder")))
        foreign = f"made from {made_from}, not {resolved(src_root)}" if (
            src_root is not None and made_from != resolved(src_root)) else None
        out["entries"] = len(entries) + unstamped
        for rel, (_, stamp) in sorted(entries.items()):
            problem = ("foreign", foreign) if foreign else (
                stamp_problem(Path(made_from) / rel, stamp) if made_from else None)
            if problem:
                out["problems"].append((problem[0], rel, problem[1]))
        return out


# ---------------------------------------------------------------------------------------------------
# data loading


class _Crops(Dataset):
    """``i -> (i, uint8 HxWx3 tensor | None, error | None)``; user errors travel back to be re-raised."""

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


# ---------------------------------------------------------------------------------------------------
# the embedder


class Embedder:
    """Embeds uint8 crops (:meth:`embed_arrays`) or image paths through ``source`` (:meth:`embed`).

    ``model`` maps a normalised NCHW batch to (N, D) features. It is never changed: the embedder runs an
    inference copy on ``device`` (``auto``: the GPU when there is one) in ``precision`` (``auto``: bf16 only
    where the hardware has it natively) with ``runtime`` (:mod:`facematch.models.inference`). ``source`` is
    a callable ``rel_path -> uint8 HxWx3 crop`` of ``spec.input_size`` (a
    :class:`~facematch.faces.source.FaceSource`). ``cache_dir`` + ``cache_key`` turn the on-disk cache on.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: BackboneSpec,
        source: Any = None,
        *,
        batch_size: int = 128,
        num_workers: int | str = "auto",
        flip: str = "concat",
        precision: str = "auto",
        device: str = "auto",
        runtime: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        cache_key: str | None = None,
        cache_meta: dict | None = None,
        progress: bool = True,
        save_every: int = 1024,
    ):
        if batch_size < 1:
            raise FacematchError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.spec, self.source = model, spec, source
        self.batch_size = int(batch_size)
        self.num_workers = num_workers
        self.flip = check_flip(flip)
        self.device_name, self.precision = resolve(device, precision)
        self.device = torch.device(self.device_name)
        self.bf16 = self.precision == "bf16"
        self.runtime = check_runtime(str(runtime))
        self.progress = progress
        self.save_every = max(1, int(save_every))
        self.cache = EmbeddingCache(cache_dir, cache_key, cache_meta) if cache_dir and cache_key else None
        self.stats: dict[str, Any] = {}
        self._net: InferenceModel | None = None
        self._expected = 0  # images the current job will embed (auto runtime: is tracing worth it?)

    # -- the model path ---------------------------------------------------------------------------------
    def _inference_model(self, x: torch.Tensor) -> InferenceModel:
        if self._net is None:
            if self.runtime == "auto":
                self._net = choose(self.model, x, self.device, n_images=self._expected, bf16=self.bf16)
            else:
                self._net = build(self.model, self.runtime, self.device, bf16=self.bf16, example=x)
            self.stats["runtime"] = self._net.runtime
        return self._net

    @torch.inference_mode()
    def forward_uint8(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, D) float32 features (D doubles with ``flip="concat"``)."""
        x = normalize_batch(crops, self.spec)
        if tuple(x.shape[2:]) != tuple(self.spec.input_size):
            raise FacematchError(
                f"crops are {tuple(x.shape[2:])} but {self.spec.name} takes {tuple(self.spec.input_size)} (H, W); "
                "check data.preprocess (template) for this backbone"
            )
        n = x.shape[0]
        if self.flip != "none":
            x = torch.cat([x, x.flip(3)])
        out = self._inference_model(x)(x)
        if self.flip == "sum":
            out = out[:n] + out[n:]
        elif self.flip == "concat":
            out = torch.cat([out[:n], out[n:]], dim=1)
        return out.cpu().numpy()

    def embed_arrays(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Embed in-memory crops (no cache), ``batch_size`` at a time."""
        arr = np.asarray(crops, dtype=np.uint8) if not isinstance(crops, np.ndarray) else crops
        self._expected = max(self._expected, len(arr))
        return np.concatenate(
            [self.forward_uint8(arr[i : i + self.batch_size]) for i in range(0, len(arr), self.batch_size)]
        )

    # -- paths, through the cache -------------------------------------------------------------------------
    def _loader(self, rel_paths: Sequence[str]) -> DataLoader:
        """Crops decoded inline or in worker processes of one torch thread each (see
        :func:`~facematch.utils.hardware.plan_workers`), the model running in this process."""
        workers, threads = plan_workers(self.num_workers, self.device.type, -(-len(rel_paths) // self.batch_size))
        kw: dict[str, Any] = {"prefetch_factor": 2, "worker_init_fn": one_thread_worker} if workers else {}
        self.stats.update(workers=workers, model_threads=threads)
        torch.set_num_threads(threads)  # restored by _compute when the job ends
        return DataLoader(_Crops(self.source, rel_paths), batch_size=self.batch_size, shuffle=False,
                          num_workers=workers, collate_fn=_collate, pin_memory=self.device.type == "cuda", **kw)

    def embed(self, rel_paths: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """``(emb, paths)`` for the distinct ``rel_paths`` (first-seen order); cached ones are not recomputed."""
        if self.source is None:
            raise ValueError("Embedder.embed needs a source (rel_path -> crop)")
        t0 = time.perf_counter()
        paths = list(dict.fromkeys(rel_paths))
        root = getattr(self.source, "root", None)  # entries are tied to root/path (none for in-memory sources)
        done = self.cache.load(root, paths) if self.cache is not None else {}
        todo = [p for p in paths if p not in done]
        self.stats = {"n_images": len(paths), "cache_hits": len(paths) - len(todo), "computed": 0,
                      "cache_dir": str(self.cache.dir) if self.cache else None,
                      **(self.cache.stats if self.cache is not None else {})}
        if todo:
            self._compute(todo, done, root)
        self.stats["cache_hit"] = bool(paths) and not todo
        self.stats["seconds"] = time.perf_counter() - t0
        if todo and self.stats["computed"]:
            self.stats["images_per_s"] = self.stats["computed"] / self.stats["seconds"]
        if not paths:
            return np.zeros((0, 0), np.float32), []
        return np.stack([done[p] for p in paths]).astype(np.float32, copy=False), paths

    def _compute(self, todo: list[str], done: dict[str, np.ndarray], root: str | os.PathLike | None = None) -> None:
        stamps = {p: stamp_before_reading(Path(root) / p) for p in todo} if self.cache is not None and root is not None else {}
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="img", desc=f"embed {self.spec.name}", file=sys.stderr,
                       dynamic_ncols=True, mininterval=1.0)
        pending_paths: list[str] = []
        pending: list[np.ndarray] = []

        def flush():
            if self.cache is not None and pending_paths:
                self.cache.add(pending_paths, np.concatenate(pending), [stamps.get(p, NO_STAMP) for p in pending_paths])
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
                feats = self.forward_uint8(crops)
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
            if self._net is not None:
                self.stats["runtime"] = self._net.runtime
            flush()  # keep whatever was computed, also on an error or Ctrl-C
            if bar is not None:
                bar.close()
        if self.cache is not None and len(self.cache.parts()) > MERGE_ABOVE:
            self.cache.merge()


def embed_paths(model: nn.Module, spec: BackboneSpec, source: Any, rel_paths: Iterable[str], *,
                cache_dir: str | os.PathLike | None = None, cache_key: str | tuple[str, dict] | None = None,
                **kwargs: Any) -> tuple[np.ndarray, list[str]]:
    """Embed the distinct ``rel_paths`` read through ``source``; ``(emb, paths)`` with ``emb[i]`` for ``paths[i]``.

    ``cache_key`` is a key from :func:`make_cache_key` (the ``(key, components)`` tuple is accepted too);
    with ``cache_dir`` unset or no key, nothing is cached. Other keyword arguments go to :class:`Embedder`.
    """
    meta = None
    if isinstance(cache_key, tuple):
        cache_key, meta = cache_key
    emb = Embedder(model, spec, source, cache_dir=cache_dir, cache_key=cache_key, cache_meta=meta, **kwargs)
    return emb.embed(rel_paths)
