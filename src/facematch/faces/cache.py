"""The aligned-crop cache: one aligned face per source image, on disk, resumable, atomic, tied to its source.

Cache format (``OUT`` is the cache folder):

- ``OUT`` is named by the user (``facematch-data prepare SRC OUT``) or by its key
  (:meth:`AlignedCache.under`, what ``FaceSource(mode="align")`` uses): ``<cache_dir>/<template>-<digest>``,
  the digest covering the cache format, template, detector settings and resolved source folder, so two
  source folders or two detector settings never share a folder.
- ``OUT/<identity>/<file>.png`` for source ``SRC/<identity>/<file>`` (the full source name is kept, so
  ``a.jpg`` and ``a.png`` never collide): the crop, lossless PNG. PNG rather than JPEG because what is
  read back is exactly what the aligner produced: no second lossy step on top of the source JPEG, so a
  warm cache and on-the-fly alignment feed the network the same pixels. The cost is disk: about 19 KB per
  112x112 crop, ~3.7x a quality-95 JPEG (5 KB). Each PNG carries its own record in a ``facematch`` text
  chunk (status ``ok``/``fallback``, number of faces, detection probability, box, landmarks, source
  colour mode, and ``src_size`` / ``src_mtime_ns``: the size and modification time of the source file it
  was made from), so no separate index can disagree with the files.
- A crop is served only while its source file still has the recorded size and modification time;
  otherwise it is made again (``AlignedCache.stats["stale_remade"]``, ``prepare``'s ``stale_remade``
  count). A crop whose source file is gone is never served.
- Every file is written to a temporary name in the same folder and renamed into place
  (:func:`facematch.utils.io.atomic_write`): a killed run never leaves a partial crop under a real name,
  and the next run removes stale temporaries.
- ``OUT/manifest.json``: the key's components (format, template, detector settings, resolved source
  folder ``src_root``) and ``key``, library versions, and counts of the last :func:`prepare` run's images
  (aligned, centre-crop fallbacks, images with several faces, images converted from another colour mode,
  failures by reason, made now vs. found already done), its elapsed time and images per second, and
  ``runs``: the timings of the last 20 runs. Written with ``complete: false`` when a cache is first used,
  rewritten at the end of each ``prepare``. A cache refuses to be used with another template, other
  detector settings or another source folder, and an older cache format is refused, never read.
- ``OUT/failures.tsv``: ``path<TAB>reason<TAB>message`` for every source that could not be read; reasons
  are ``missing``, ``empty``, ``not_image``, ``oversized``, ``corrupt`` (``write`` when the crop could
  not be stored, ``error`` for anything else).
  Failed images get no crop and are retried by the next run.

Resuming: an image is finished when its PNG exists and its stamp matches the source file; ``prepare``
skips finished images (``force=True`` redoes them). :class:`AlignedCache` ``.get(rel)`` reads a crop,
aligning and storing it first when it is missing or stale. ``facematch-data check-cache`` reports stale,
foreign and old-format entries (:func:`check_folder`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from facematch.data.images import MAX_PIXELS, load_image
from facematch.errors import DataNotFoundError, FacematchError, UnreadableImageError
from facematch.faces.align import AlignResult, FaceAligner, source_mode
from facematch.utils.io import (
    atomic_write,
    atomic_write_text,
    digest,
    file_stamp,
    resolved,
    stamp_before_reading,
    stamp_problem,
)

CACHE_FORMAT = "facematch-aligned-crops/2"
MANIFEST = "manifest.json"
FAILURES = "failures.tsv"
CROP_SUFFIX = ".png"
RECORD_KEY = "facematch"
#: Files ``prepare`` picks up when it scans a folder (case-insensitive suffixes).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
#: Temporary files older than this (seconds) are left over from a killed run and removed.
STALE_TMP_S = 60.0


# ---------------------------------------------------------------------------------------------------
# paths and records


def check_rel(rel: str) -> str:
    """A source path relative to the dataset root, refused if it could escape the cache folder."""
    p = PurePosixPath(str(rel).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise FacematchError(f"image path '{rel}' must be relative to the dataset root, without '..'")
    return p.as_posix()


def crop_path(out_root: str | os.PathLike, rel: str) -> Path:
    """Where the crop of source ``rel`` lives: ``OUT/<rel>.png``."""
    return Path(out_root) / (check_rel(rel) + CROP_SUFFIX)


def write_crop(path: str | os.PathLike, result: AlignResult, stamp: tuple[int, int]) -> Path:
    """Atomically write ``result`` as a PNG carrying its record, and the ``(st_size, st_mtime_ns)``
    ``stamp`` of the source file it was made from, in a ``facematch`` text chunk."""
    record = {**result.record(), "src_size": int(stamp[0]), "src_mtime_ns": int(stamp[1])}
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEY, json.dumps(record, separators=(",", ":")))
    img = Image.fromarray(np.ascontiguousarray(result.image, dtype=np.uint8), mode="RGB")
    return atomic_write(path, lambda fh: img.save(fh, format="PNG", pnginfo=info, compress_level=6))


def _record(info: dict) -> dict | None:
    text = info.get(RECORD_KEY)
    return json.loads(text) if text else None


def read_record(path: str | os.PathLike) -> dict | None:
    """The record stored in a crop's PNG, or ``None`` if the file is unreadable or carries none."""
    try:
        with Image.open(path) as im:
            return _record(im.info)
    except (OSError, ValueError, SyntaxError):
        return None


def record_stamp(record: dict | None) -> tuple[int, int] | None:
    """The source-file stamp a crop's record carries (``None`` for a record without one)."""
    if not record or not isinstance(record.get("src_size"), int) or not isinstance(record.get("src_mtime_ns"), int):
        return None
    return record["src_size"], record["src_mtime_ns"]


def classify_failure(path: str | os.PathLike, err: Exception) -> str:
    """Reason code for a source that could not be read (see the module docstring)."""
    p = Path(path)
    if isinstance(err, DataNotFoundError) or not p.exists():
        return "missing"
    if not isinstance(err, UnreadableImageError):
        return "error"
    if p.is_file() and p.stat().st_size == 0:
        return "empty"
    try:
        with Image.open(p) as im:
            w, h = im.size
    except UnidentifiedImageError:
        return "not_image"
    except Image.DecompressionBombError:
        return "oversized"
    except Exception:
        return "corrupt"
    return "oversized" if w * h > MAX_PIXELS else "corrupt"


def list_images(src_root: str | os.PathLike) -> list[str]:
    """Every image file under ``src_root`` (by suffix, hidden files skipped), relative, sorted."""
    root = Path(src_root)
    if not root.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {root} (pass the folder holding <identity>/<file>)")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES):
                out.append(Path(dirpath, f).relative_to(root).as_posix())
    return sorted(out)


def remove_stale_tmp(out_root: str | os.PathLike, older_than_s: float | None = None) -> int:
    """Delete temporaries (``.<name>.*.tmp``) a killed run left behind; returns how many.

    Only those older than ``older_than_s`` (default :data:`STALE_TMP_S`), so a write in flight in another
    process (a DataLoader worker filling the cache on demand) is left alone.
    """
    older_than_s = STALE_TMP_S if older_than_s is None else older_than_s
    n, now = 0, time.time()
    for dirpath, _, filenames in os.walk(out_root):
        for f in filenames:
            if f.startswith(".") and f.endswith(".tmp"):
                p = Path(dirpath, f)
                try:
                    if now - p.stat().st_mtime > older_than_s:
                        p.unlink()
                        n += 1
                except FileNotFoundError:
                    pass
    return n


def versions() -> dict:
    """Versions of what shapes a crop (from package metadata: importing torch here would cost seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    import facematch

    def ver(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {
        "facematch": facematch.__version__,
        "facenet-pytorch": ver("facenet-pytorch"),
        "torch": ver("torch"),
        "pillow": Image.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def old_format_error(folder: str | os.PathLike, found) -> FacematchError:
    """The one-line refusal of a cache folder in another (older) format."""
    return FacematchError(
        f"{folder} is an aligned-crop cache in format {found!r}, not {CACHE_FORMAT} (its crops do not record "
        "the source file they were made from, so a changed or swapped source would go unnoticed); "
        "delete that folder (crops are re-made on first use) or use another cache folder"
    )


def read_manifest(out_root: str | os.PathLike) -> dict | None:
    p = Path(out_root) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise FacematchError(f"{p} is not a valid cache manifest; delete it (crops are kept) and re-run") from None


def _differences(made: dict, asked: dict, prefix: str = "") -> list[str]:
    """``key=made (not asked)`` for every setting that differs, nested dicts flattened."""
    out = []
    for k in asked:
        a, m = asked[k], made.get(k)
        if isinstance(a, dict) and isinstance(m, dict):
            out += _differences(m, a, f"{prefix}{k}.")
        elif a != m:
            out.append(f"{prefix}{k}={m} (not {a})")
    return out


# ---------------------------------------------------------------------------------------------------
# the cache


class AlignedCache:
    """Aligned crops of ``src_root``'s images under ``root``, made on first use, re-made when a source changes.

    ``AlignedCache(root, "arcface_112x112", src_root, select="largest")``; keyword arguments are those of
    :class:`~facematch.faces.align.FaceAligner`. ``get(rel)`` returns the ``HxWx3`` uint8 crop of
    ``src_root/rel``; a missing or stale crop is aligned, written atomically and returned (an unreadable
    source raises :class:`~facematch.errors.UnreadableImageError`, a missing one
    :class:`~facematch.errors.DataNotFoundError`). ``stats`` counts crops ``served`` from disk, ``made``
    and, of those, ``stale_remade`` (the source file changed). :meth:`under` puts the cache in its keyed
    folder. Picklable: DataLoader workers each build their own detector on first miss.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        template: str,
        src_root: str | os.PathLike | None = None,
        **aligner_kwargs,
    ):
        self.root = Path(root)
        self.src_root = Path(src_root) if src_root is not None else None
        self.aligner_kwargs = dict(aligner_kwargs)
        self._aligner: FaceAligner | None = None
        probe = FaceAligner(template, **self.aligner_kwargs)  # validates names; builds no model
        self.template = probe.template.name
        self.settings = probe.settings
        #: What every crop depends on, and the digest of it that names a keyed cache folder.
        self.components = {"format": CACHE_FORMAT, **self.settings,
                           "src_root": resolved(src_root) if src_root is not None else None}
        self.key = f"{self.template}-{digest(self.components)}"
        self.stats: Counter = Counter()
        self._checked = False

    @classmethod
    def under(cls, cache_dir: str | os.PathLike, template: str, src_root: str | os.PathLike,
              **aligner_kwargs) -> "AlignedCache":
        """The cache of ``src_root``'s crops with these settings, in its own folder ``cache_dir/<key>``."""
        cache = cls(cache_dir, template, src_root, **aligner_kwargs)
        cache.root = Path(cache_dir) / cache.key
        return cache

    # -- consistency --------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse an old-format cache, or one made with another template, detector settings or source
        folder; stamp a new one."""
        if self._checked:
            return
        manifest = read_manifest(self.root)
        if manifest is not None:
            if manifest.get("format") != CACHE_FORMAT:
                raise old_format_error(self.root, manifest.get("format"))
            diff = _differences({k: manifest.get(k) for k in self.settings}, self.settings)
            if diff:
                raise FacematchError(
                    f"aligned cache {self.root} was made with {', '.join(diff)}; "
                    "use those settings, another cache folder, or delete this one"
                )
            made_from = manifest.get("src_root")
            if self.src_root is None and made_from:
                self.src_root = Path(made_from)
            elif made_from != self.components["src_root"]:
                raise FacematchError(
                    f"aligned cache {self.root} holds crops of {made_from}, not {self.components['src_root']}; "
                    "a cache serves one source folder: use another cache folder for this one"
                )
        elif self.src_root is None:
            raise FacematchError(f"{self.root} is not an aligned-crop cache (no {MANIFEST}) and no source folder was given")
        else:
            self.write_manifest({"complete": False})
        self._checked = True

    def manifest_base(self) -> dict:
        return {
            **self.components,
            "key": self.key,
            "crop_format": "png",
            "crop_name": "<identity>/<file>.png",
            "versions": versions(),
        }

    def write_manifest(self, extra: dict) -> None:
        data = {**self.manifest_base(), **extra}
        atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=2) + "\n")

    # -- crops --------------------------------------------------------------------------------------
    @property
    def aligner(self) -> FaceAligner:
        if self._aligner is None:
            self._aligner = FaceAligner(self.template, **self.aligner_kwargs)
        return self._aligner

    def path(self, rel: str) -> Path:
        return crop_path(self.root, rel)

    def source_path(self, rel: str) -> Path:
        if self.src_root is None:
            raise FacematchError(f"{rel}: the aligned cache {self.root} has no source folder to check or align it from")
        return self.src_root / check_rel(rel)

    def has(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def record(self, rel: str) -> dict | None:
        return read_record(self.path(rel))

    def get(self, rel: str) -> np.ndarray:
        """The crop of ``rel`` (``HxWx3`` uint8); aligned and stored first if it is not cached yet or its
        source file changed since (one ``stat`` of the source per call)."""
        self.check()
        try:
            stamp = file_stamp(self.source_path(rel))
        except OSError:
            return self.make(rel).image  # reading the source names the problem (missing, a folder...)
        try:
            with Image.open(self.path(rel)) as im:
                if record_stamp(_record(im.info)) == stamp:
                    crop = np.asarray(im.convert("RGB"), dtype=np.uint8)
                    self.stats["served"] += 1
                    return crop
            self.stats["stale_remade"] += 1
        except FileNotFoundError:
            pass
        except (OSError, ValueError, SyntaxError):
            pass  # damaged on disk (not by us: writes are atomic); make it again
        return self.make(rel).image

    def make(self, rel: str) -> AlignResult:
        """Align ``src_root/rel`` now and store it with its source file's stamp (overwriting any cached crop)."""
        self.check()
        src = self.source_path(rel)
        stamp = stamp_before_reading(src)
        result = self.aligner.align_path(src)  # raises the user error for a missing or unreadable file
        write_crop(self.path(rel), result, stamp)
        self.stats["made"] += 1
        return result

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_aligner"] = None
        return state


# ---------------------------------------------------------------------------------------------------
# prepare: a whole dataset, in parallel

_worker: dict = {}


def _init_worker(template: str, src_root: str, out_root: str, aligner_kwargs: dict, threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _worker["aligner"] = FaceAligner(template, **aligner_kwargs)
    _worker["src"], _worker["out"] = Path(src_root), Path(out_root)


def _fail(rel: str, path: Path, err: Exception) -> dict:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return {"rel": rel, "status": "failed", "reason": classify_failure(path, err), "message": msg}


def _process_chunk(rels: list[str]) -> list[dict]:
    """Align and store a chunk of images; never raises for a bad image (it becomes a failure record)."""
    aligner: FaceAligner = _worker["aligner"]
    src, out = _worker["src"], _worker["out"]
    records: list[dict] = []
    loaded: list[tuple[str, tuple[int, int], Image.Image, str | None]] = []
    for rel in rels:
        path = src / rel
        try:
            stamp = file_stamp(path)  # before reading: a file changed meanwhile is re-made next time
            loaded.append((rel, stamp, load_image(path), source_mode(path)))
        except Exception as err:  # bad inputs are recorded, and the run goes on
            records.append(_fail(rel, path, err))
    try:
        results = aligner.align_batch([img for _, _, img, _ in loaded])
    except Exception:  # one odd image must not sink the batch: retry one by one
        results = []
        for rel, _, img, _ in loaded:
            try:
                results.append(aligner.align(img))
            except Exception as err:
                results.append(err)
    for (rel, stamp, _, mode), res in zip(loaded, results):
        if isinstance(res, Exception):
            records.append(_fail(rel, src / rel, res))
            continue
        res.source_mode = mode
        try:
            write_crop(crop_path(out, rel), res, stamp)
        except OSError as err:
            records.append({"rel": rel, "status": "failed", "reason": "write", "message": str(err)})
            continue
        records.append({"rel": rel, **res.record(), "made": True})
    return records


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def prepare(
    src_root: str | os.PathLike,
    out_root: str | os.PathLike,
    template: str,
    rel_paths: Iterable[str] | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
    chunk_size: int = 16,
    **aligner_kwargs,
) -> dict:
    """Align every image of ``src_root`` (or only ``rel_paths``) into the cache ``out_root``.

    Runs on ``workers`` processes (default: all cores; a pool only for at least four chunks per worker),
    each with its own detector and one torch thread; ``workers=1`` runs in this process. Finished crops
    (whose record matches their source file's size and modification time) are skipped unless ``force``; stale ones are made again. Returns the
    manifest written to ``out_root/manifest.json`` (see the module docstring); failures go to
    ``out_root/failures.tsv``.
    """
    t0 = time.perf_counter()
    src_root, out_root = Path(src_root), Path(out_root)
    if not src_root.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {src_root} (pass the folder holding <identity>/<file>)")
    cache = AlignedCache(out_root, template, src_root, **aligner_kwargs)
    if rel_paths is None:
        rels = list_images(src_root)
        try:  # a cache folder inside the dataset folder is not part of the dataset
            inner = out_root.resolve().relative_to(src_root.resolve()).as_posix() + "/"
            rels = [r for r in rels if not r.startswith(inner)]
        except ValueError:
            pass
    else:
        rels = sorted({check_rel(r) for r in rel_paths})
    out_root.mkdir(parents=True, exist_ok=True)
    cache.check()
    remove_stale_tmp(out_root)

    todo, records, stale = [], [], 0
    for rel in rels:
        if not force and cache.has(rel):
            rec = cache.record(rel)
            problem = stamp_problem(src_root / rel, record_stamp(rec)) if rec is not None else ("damaged", "")
            if problem is None:
                records.append({"rel": rel, **rec, "made": False})
                continue
            stale += problem[0] == "stale"
        todo.append(rel)

    workers = max(1, int(workers or os.cpu_count() or 1))
    # a worker process costs seconds to start (torch, MTCNN): only for several chunks each
    workers = min(workers, max(1, len(todo) // (4 * chunk_size)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rels), initial=len(records), unit="img", desc=f"align {template}", file=sys.stderr)
    init_args = (cache.template, str(src_root), str(out_root), cache.aligner_kwargs)
    pool = None
    try:
        if workers == 1:
            _init_worker(*init_args, threads=None)
            results: Iterable[list[dict]] = map(_process_chunk, _chunks(todo, chunk_size))
        else:
            # spawn, not fork: forking a process whose torch thread pools are running can deadlock.
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(*init_args, 1))
            results = pool.imap_unordered(_process_chunk, _chunks(todo, chunk_size))
        for batch in results:
            records.extend(batch)
            if bar is not None:
                bar.update(len(batch))
        if pool is not None:
            pool.close()
            pool.join()
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    manifest = summarize(records, n_requested=len(rels), elapsed_s=elapsed, workers=workers, stale_remade=stale)
    previous = (read_manifest(out_root) or {}).get("runs", [])
    run = {k: manifest[k] for k in ("updated", "workers", "elapsed_s", "images_per_s")}
    manifest["runs"] = [*previous, {**run, "requested": len(rels), "made": manifest["counts"]["made_this_run"]}][-20:]
    failures = sorted((r for r in records if r["status"] == "failed"), key=lambda r: r["rel"])
    atomic_write_text(
        out_root / FAILURES,
        "path\treason\tmessage\n" + "".join(f"{r['rel']}\t{r['reason']}\t{r['message']}\n" for r in failures),
    )
    cache.write_manifest(manifest)
    return {**cache.manifest_base(), **manifest}


def summarize(records: list[dict], *, n_requested: int, elapsed_s: float, workers: int, stale_remade: int = 0) -> dict:
    """Manifest counts for one ``prepare`` run's records (``stale_remade``: crops redone because their
    source file changed)."""
    status = Counter(r["status"] for r in records)
    made = sum(1 for r in records if r.get("made"))
    done = [r for r in records if r["status"] != "failed"]
    modes = Counter(r.get("source_mode") for r in done if r.get("source_mode") not in (None, "RGB"))
    return {
        "complete": True,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {
            "requested": n_requested,
            "cached": len(done),
            "aligned": status.get("ok", 0),
            "fallback": status.get("fallback", 0),
            "failed": status.get("failed", 0),
            "multiple_faces": sum(1 for r in done if (r.get("n_faces") or 0) > 1),
            "made_this_run": made,
            "already_done": len(done) - made,
            "stale_remade": stale_remade,
            "converted_from_mode": dict(sorted(modes.items())),
            "failed_by_reason": dict(sorted(Counter(r["reason"] for r in records if r["status"] == "failed").items())),
        },
        "fallbacks": sorted(r["rel"] for r in records if r["status"] == "fallback"),
        "failures_file": FAILURES,
        "workers": workers,
        "elapsed_s": round(elapsed_s, 2),
        "images_per_s": round(made / elapsed_s, 2) if elapsed_s > 0 and made else None,
    }


# ---------------------------------------------------------------------------------------------------
# check: every crop against its source file


def check_folder(folder: str | os.PathLike, src_root: str | os.PathLike | None = None) -> dict:
    """Check the aligned-crop cache ``folder`` (one holding a manifest) without changing it.

    Returns ``{"folder", "what", "entries", "problems": [(kind, rel, why), ...]}``; kinds: ``old-format``
    (the whole folder), ``foreign`` (source file missing, or the cache was made from another folder than
    ``src_root`` when given), ``stale`` (source file changed since the crop was made).
    """
    folder = Path(folder)
    manifest = read_manifest(folder) or {}
    out: dict = {"folder": str(folder), "what": "aligned crops", "entries": 0, "problems": []}
    if manifest.get("format") != CACHE_FORMAT:
        out["problems"].append(("old-format", "", str(old_format_error(folder, manifest.get("format")))))
        return out
    made_from = manifest.get("src_root")
    out["what"] = f"aligned crops ({manifest.get('template')}) of {made_from}"
    foreign = None
    if not made_from:
        foreign = "the manifest names no source folder"
    elif src_root is not None and made_from != resolved(src_root):
        foreign = f"made from {made_from}, not {resolved(src_root)}"
    for crop in sorted(folder.rglob("*" + CROP_SUFFIX)):
        if crop.name.startswith("."):
            continue
        rel = crop.relative_to(folder).as_posix()[: -len(CROP_SUFFIX)]
        out["entries"] += 1
        problem = ("foreign", foreign) if foreign else stamp_problem(Path(made_from) / rel, record_stamp(read_record(crop)))
        if problem:
            out["problems"].append((problem[0], rel, problem[1]))
    return out
