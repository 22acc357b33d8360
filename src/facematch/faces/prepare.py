"""``prepare``: align a whole dataset (or the images a pairs file uses) into an aligned-crop cache, in parallel.

Resuming: an image is finished when its crop exists and its record's stamp matches the source file;
finished images are skipped (``force=True`` redoes them), stale ones are made again and counted
(``stale_remade``), failed ones (:mod:`facematch.faces.failures`) get no crop and are retried by the next
run. Temporaries a killed run left behind are removed first. The run's counts and timings go to the
cache's ``manifest.json`` (:func:`summarize`), its failures to ``failures.tsv``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from PIL import Image

from facematch.errors import DataNotFoundError
from facematch.utils.allocator import tune as tune_allocator
from facematch.faces.align import FaceAligner
from facematch.faces.crop_cache import AlignedCache, check_rel, crop_path, record_stamp, write_crop
from facematch.faces.failures import FAILURES, failure_record, write_failures
from facematch.faces.images import list_images, load_image, source_mode
from facematch.faces.manifest import read_manifest
from facematch.utils.io import file_stamp, remove_stale_tmp, stamp_problem
from facematch.utils.locks import folder_lock

_worker: dict = {}
#: Seconds a run waits for another run's manifest update (a read and a write of one small file).
MANIFEST_LOCK_S = 60.0


def _init_worker(template: str, src_root: str, out_root: str, aligner_kwargs: dict, threads: int | None) -> None:
    tune_allocator()  # a spawned worker starts with glibc's defaults
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _worker["aligner"] = FaceAligner(template, **aligner_kwargs)
    _worker["src"], _worker["out"] = Path(src_root), Path(out_root)


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
            records.append(failure_record(rel, path, err))
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
            records.append(failure_record(rel, src / rel, res))
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


def _requested(src_root: Path, out_root: Path, rel_paths: Iterable[str] | None) -> list[str]:
    """``rel_paths`` (checked, sorted, distinct), or every image of ``src_root`` outside ``out_root``."""
    if rel_paths is not None:
        return sorted({check_rel(r) for r in rel_paths})
    rels = list_images(src_root)
    try:  # a cache folder inside the dataset folder is not part of the dataset
        inner = out_root.resolve().relative_to(src_root.resolve()).as_posix() + "/"
    except ValueError:
        return rels
    return [r for r in rels if not r.startswith(inner)]


def _run(todo: list[str], init_args: tuple, workers: int, chunk_size: int, bar) -> list[dict]:
    """Align ``todo`` in this process (``workers == 1``) or a spawned pool; records in completion order."""
    records: list[dict] = []
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
    return records


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
    """Align every image of ``src_root`` (or only ``rel_paths``) into the cache folder ``out_root``.

    ``out_root`` is used as named (:class:`~facematch.faces.crop_cache.AlignedCache`: one made with other
    settings is refused); pass ``AlignedCache.under(cache_dir, ...).root`` for the keyed folder. Runs on
    ``workers`` processes (default: all cores; a pool only for at least four chunks per worker), each with
    its own detector and one torch thread; ``workers=1`` runs in this process. Returns the manifest written
    to ``<out_root>/manifest.json``.
    """
    t0 = time.perf_counter()
    src_root, out_root = Path(src_root), Path(out_root)
    if not src_root.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {src_root} (pass the folder holding <identity>/<file>)")
    cache = AlignedCache(out_root, template, src_root, **aligner_kwargs)
    rels = _requested(src_root, out_root, rel_paths)
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
    try:
        init_args = (cache.template, str(src_root), str(out_root), cache.aligner_kwargs)
        records += _run(todo, init_args, workers, chunk_size, bar)
    finally:
        if bar is not None:
            bar.close()
    manifest = summarize(records, n_requested=len(rels), elapsed_s=time.perf_counter() - t0, workers=workers,
                         stale_remade=stale)
    write_failures(out_root, records)
    record_run(cache, manifest, len(rels))
    return {**cache.manifest_base(), **manifest, "folder": str(out_root)}


def record_run(cache: AlignedCache, manifest: dict, n_requested: int) -> None:
    """Write ``manifest`` with this run appended to the ``runs`` already recorded (the last 20), under the
    cache folder's lock: two runs into one folder at once both stay in the history (the crops themselves
    need no lock: each is one atomic file, the same whichever run made it)."""
    run = {k: manifest[k] for k in ("updated", "workers", "elapsed_s", "images_per_s")}
    with folder_lock(cache.root, timeout=MANIFEST_LOCK_S, what="facematch-data prepare",
                     fix="another run is stuck writing its manifest; re-run when it has finished"):
        previous = (read_manifest(cache.root) or {}).get("runs", [])
        manifest["runs"] = [*previous, {**run, "requested": n_requested,
                                        "made": manifest["counts"]["made_this_run"]}][-20:]
        cache.write_manifest(manifest)


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
