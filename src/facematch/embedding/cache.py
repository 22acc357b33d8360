"""The on-disk embedding cache: one folder per key, atomically written parts of (paths, vectors, source stamps).

The key (:func:`make_cache_key`) names everything a cached output depends on: the network's weights
(sha256 of its state dict), the crop source (``FaceSource.key``, resolved root, alignment settings, the
degradation and its draw), the
number of views (crop, or crop and mirror), the dtype and the backbone's input spec. A key's folder holds
``meta.json`` (those components, readable) and ``part-*.npz`` files ``{"paths", "emb" float32 (n, V*D),
"src_size", "src_mtime_ns"}`` read with ``allow_pickle=False``. An entry is used only while its source file
still has the size and modification time it had when embedded.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from facematch.models.base import BackboneSpec

from facematch.utils.io import NO_STAMP, atomic_write, atomic_write_text, digest, resolved, stamp_problem

log = logging.getLogger(__name__)

CACHE_FORMAT = "facematch-embeddings/3"
MERGE_ABOVE = 8  # parts; more than this are merged into one at the end of a run


def dtype_name(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"


def source_description(source: Any) -> dict:
    """What a FaceSource contributes to the cache key: its ``key``, resolved root and alignment settings."""
    root = getattr(source, "root", None)
    return {
        "source": getattr(source, "key", type(source).__name__),
        "root": resolved(root) if root is not None else None,
        "align": {k: v for k, v in sorted((getattr(source, "align_kwargs", None) or {}).items())},
        **({"degrade": source.degrade_description} if getattr(source, "degrade_description", None) else {}),
    }


def make_cache_key(
    fingerprint: str, source: Any, spec: BackboneSpec, *, views: int = 1, bf16: bool = False, extra: dict | None = None
) -> tuple[str, dict]:
    """``(key, components)``: a folder name (readable prefix + digest of every component) and the components.

    ``fingerprint`` is the sha256 of the cached network's weights (:func:`state_dict_sha256`); ``views``
    is 1 (crops) or 2 (crops and mirrors, each row holding both outputs); ``extra`` adds anything else the
    cached outputs depend on.
    """
    if views not in (1, 2):
        raise ValueError(f"views must be 1 or 2, got {views}")
    comp = {
        "format": CACHE_FORMAT,
        "weights_sha256": fingerprint,
        **source_description(source),
        "views": int(views),
        "dtype": dtype_name(bf16),
        "arch": spec.name,
        "input_size": list(spec.input_size),
        "mean": list(spec.mean),
        "std": list(spec.std),
        **({"extra": extra} if extra else {}),
    }
    src = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(comp["source"]))
    key = f"{spec.name}-{fingerprint[:12]}-{src}-views{views}-{comp['dtype']}-{digest(comp)}"
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
            except FileNotFoundError:  # merged meanwhile by another process: its vectors are in the merged part
                continue
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

    def check(self, src_root: str | os.PathLike | None = None, *,
              stamped: Callable[[str], bool] = lambda root: True) -> dict:
        """Every entry against its source file, without changing anything: ``{"folder", "what", "entries",
        "problems": [(kind, rel_path, why), ...]}`` with kinds ``old-format``, ``foreign`` (source file
        missing, or made from another folder than ``src_root`` when given) and ``stale`` (source changed).
        ``stamped(root)`` says whether entries made from ``root`` carry file stamps (a packed set's do not:
        its digest is in the key); the caller knows the source formats, this layer does not."""
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
                stamp_problem(Path(made_from) / rel, stamp) if made_from and stamped(made_from) else None)
            if problem:
                out["problems"].append((problem[0], rel, problem[1]))
        return out
