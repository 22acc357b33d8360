"""``facematch-data pack SRC OUT``: an identity-folder dataset (or an aligned-crop cache) into litdata shards
with a facematch index (the format: :mod:`facematch.data.shards`).

Resumable without duplicates or losses: the images are the identity index's sorted paths, cut into parts
of ``part_size``; part ``k`` is always the same images, written with litdata's in-process ``BinaryWriter``
(no worker processes, so the bytes are a function of the images alone) into ``OUT/.part-k.tmp`` and renamed
to ``OUT/part-k`` once complete, with ``part.json`` recording its paths and file hashes. A re-run keeps
every part whose files still match their record and redoes the rest; ``OUT/.pack-plan.json`` (written
first) makes a re-run with another source or settings stop with one line instead of mixing two packs;
``facematch-pack.json`` is written last, atomically, so a half-made folder is never read as a dataset.

An aligned-crop cache (``facematch-data prepare`` output: ``manifest.json``, ``<identity>/<file>.png``) is
packed under the source names (``<identity>/<file>``, so pairs files still apply) and records
``prealigned`` with the cache's template; a folder of pre-aligned crops records the template given with
``prealigned=`` (e.g. lfw-aligned-112: ``arcface_112x112``); any other folder records ``center`` (raw
photos).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import identity_of
from facematch.errors import DataNotFoundError, FacematchError
from facematch.faces.images import list_images
from facematch.data.shard_format import PACK_FORMAT
from facematch.data.shards import LITDATA_INDEX, PACK_INDEX, CorruptPackError, open_packed
from facematch.utils.io import atomic_write_text, digest, resolved, sha256_file
from facematch.utils.locks import LOCK_NAME, folder_lock

PLAN = ".pack-plan.json"
PART_RECORD = "part.json"
PART_SIZE = 2048
CHUNK_BYTES = "16MB"


def plan_images(src, pairs: str | None = None, prealigned: str | None = None) -> dict:
    """What ``src`` packs into: ``{"files": {rel: file under src}, "preprocess", "kind", "dropped"}``."""
    from facematch.faces.crop_cache import CROP_SUFFIX
    from facematch.faces.manifest import read_manifest
    from facematch.faces.templates import get_template

    src = Path(src)
    if not src.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {src} (pass the folder holding <identity>/<file>)")
    manifest = read_manifest(src)
    wanted = None
    if pairs:
        from facematch.data.pair_files import read_pairs

        wanted = {p for pair in read_pairs(pairs) for p in (pair.a, pair.b)}
    if manifest is not None and manifest.get("template"):
        if prealigned and prealigned != manifest["template"]:
            raise FacematchError(f"{src} is an aligned-crop cache of {manifest['template']}, not {prealigned}; "
                                 "drop --prealigned")
        files = {f[: -len(CROP_SUFFIX)]: f for f in list_images(src) if f.endswith(CROP_SUFFIX) and f.count("/") == 1}
        dropped = {}
        if wanted is not None:
            dropped = {"missing": sorted(wanted - set(files))}
            files = {r: f for r, f in files.items() if r in wanted}
        return {"files": dict(sorted(files.items())), "kind": "aligned-cache", "dropped": {k: v for k, v in dropped.items() if v},
                "preprocess": {"mode": "prealigned", "template": manifest["template"]}}
    index = IdentityIndex.from_paths(src, wanted) if wanted is not None else IdentityIndex.from_folder(src)
    rels, _ = index.paths_and_labels()
    preprocess = {"mode": "center"}
    if prealigned:
        preprocess = {"mode": "prealigned", "template": get_template(prealigned).name}
    return {"files": {r: r for r in rels}, "kind": "folder", "preprocess": preprocess,
            "dropped": {k: list(v) for k, v in index.dropped.items()}}


def _part_files(folder: Path) -> dict:
    return {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(folder.iterdir()) if f.name == LITDATA_INDEX or f.name.endswith(".bin")}


def _part_ok(folder: Path, rels: list[str], plan_digest: str) -> bool:
    """Whether finished part ``folder`` holds exactly ``rels`` of this plan with undamaged files."""
    try:
        rec = json.loads((folder / PART_RECORD).read_text())
    except (OSError, ValueError):
        return False
    if rec.get("plan") != plan_digest or rec.get("rels") != rels:
        return False
    try:
        return _part_files(folder) == rec["files"]
    except (OSError, KeyError):
        return False


def _write_part(src: Path, out: Path, k: int, first: int, rels: list[str], files: dict[str, str],
                labels: dict[str, int], plan_digest: str, chunk_bytes: str, bar=None) -> dict:
    """Write part ``k`` (items ``first``..) into a temporary folder, record it, rename it into place."""
    from litdata.streaming.writer import BinaryWriter

    final, tmp = out / f"part-{k:05d}", out / f".part-{k:05d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    writer = BinaryWriter(str(tmp), chunk_bytes=chunk_bytes)
    for i, rel in enumerate(rels):
        try:
            data = (src / files[rel]).read_bytes()
        except OSError as err:
            raise DataNotFoundError(f"{src / files[rel]} cannot be read ({err.strerror or err}); fix it and re-run "
                                    "(finished parts are kept)") from None
        writer.add_item(i, {"rel": rel, "label": labels[identity_of(rel)], "image": data})
        if bar is not None:
            bar.update(1)
    writer.done()
    writer._merge_no_wait()  # one writer: its own index becomes the part's index.json
    for f in tmp.iterdir():
        if f.name != LITDATA_INDEX and not f.name.endswith(".bin"):
            f.unlink()
    # litdata stamps its index with the write time ("updated_at", the name of a remote reader's cache folder,
    # which it clears when the stamp changes): a digest of the chunks instead, so a part is a function of its
    # images (a resumed pack is byte-identical to an uninterrupted one) and the stamp still changes with them.
    lit = tmp / LITDATA_INDEX
    meta = json.loads(lit.read_text())
    meta["updated_at"] = digest({f.name: sha256_file(f) for f in sorted(tmp.glob("*.bin"))}, 16)
    lit.write_text(json.dumps(meta, sort_keys=True))
    rec = {"plan": plan_digest, "first": first, "rels": rels, "files": _part_files(tmp)}
    atomic_write_text(tmp / PART_RECORD, json.dumps(rec) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return rec


def pack(src, out, *, pairs: str | None = None, prealigned: str | None = None, part_size: int = PART_SIZE,
         chunk_bytes: str = CHUNK_BYTES, force: bool = False, progress: bool = True) -> dict:
    """Pack ``src`` into ``out`` (resuming a previous run); returns the facematch index written.

    One pack at a time per ``out`` (its folder lock, :mod:`facematch.utils.locks`): two would write the
    same ``.part-k.tmp`` folders and delete each other's, so a second one stops at once with one line."""
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    if part_size < 1:
        raise FacematchError(f"--part-size must be at least 1, got {part_size}")
    plan = plan_images(src, pairs, prealigned)
    if not plan["files"]:
        raise DataNotFoundError(f"no images to pack under {src}" + (f" named by {pairs}" if pairs else ""))
    with folder_lock(out, timeout=0, what="facematch-data pack",
                     fix="wait for the other `facematch-data pack` into it to finish, then re-run if needed "
                         "(the parts it finished are reused)"):
        return _pack(src, out, plan, pairs=pairs, prealigned=prealigned, part_size=part_size,
                     chunk_bytes=chunk_bytes, force=force, progress=progress, t0=t0)


def _pack(src: Path, out: Path, plan: dict, *, pairs: str | None, prealigned: str | None, part_size: int,
          chunk_bytes: str, force: bool, progress: bool, t0: float) -> dict:
    """:func:`pack`, with the lock of ``out`` held."""
    files = plan["files"]
    rels = list(files)
    identities: dict[str, int] = {}
    for rel in rels:
        identities[identity_of(rel)] = identities.get(identity_of(rel), 0) + 1
    labels = {ident: i for i, ident in enumerate(sorted(identities))}
    settings = {"part_size": int(part_size), "chunk_bytes": str(chunk_bytes), "pairs": str(pairs) if pairs else None,
                "prealigned": prealigned}
    source = {"root": resolved(src), "kind": plan["kind"]}
    plan_digest = digest({"format": PACK_FORMAT, "source": source, "settings": settings, "rels": rels,
                          "preprocess": plan["preprocess"]}, 16)

    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / PLAN
    if plan_file.is_file() and not force:
        made = json.loads(plan_file.read_text())
        if made.get("plan") != plan_digest:
            raise FacematchError(
                f"{out} holds a pack of {made.get('source', {}).get('root')} with other settings or images "
                f"({made.get('settings')}); use another OUT, the same SRC and options, or --force to replace it")
    elif not plan_file.is_file() and any(f.name != LOCK_NAME for f in out.iterdir()):
        raise FacematchError(f"{out} is not empty and holds no pack; pass an empty or new OUT")
    if force:  # only what a pack writes
        for p in [*out.glob("part-*"), *out.glob(".part-*.tmp"), out / PACK_INDEX]:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    atomic_write_text(plan_file, json.dumps({"plan": plan_digest, "source": source, "settings": settings}) + "\n")

    bounds = [(k, i, rels[i: i + part_size]) for k, i in enumerate(range(0, len(rels), part_size))]
    keep = {k for k, _, part in bounds if _part_ok(out / f"part-{k:05d}", part, plan_digest)}
    index_file = out / PACK_INDEX
    if len(keep) < len(bounds) and index_file.exists():
        index_file.unlink()  # parts are about to change: the set is not a finished one meanwhile
    for p in out.glob(".part-*.tmp"):  # left by an interrupted run
        shutil.rmtree(p, ignore_errors=True)
    for p in out.glob("part-*"):  # parts of another part count (cannot happen with one plan; be safe)
        if p.is_dir() and int(p.name.split("-")[1]) >= len(bounds):
            shutil.rmtree(p)

    bar = None
    done_images = sum(len(part) for k, _, part in bounds if k in keep)
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rels), initial=done_images, unit="img", desc="pack", file=sys.stderr, dynamic_ncols=True)
    parts = []
    try:
        for k, first, part in bounds:
            folder = out / f"part-{k:05d}"
            if k in keep:
                rec = json.loads((folder / PART_RECORD).read_text())
            else:
                rec = _write_part(src, out, k, first, part, files, labels, plan_digest, chunk_bytes, bar)
            parts.append({"dir": folder.name, "first": first, "count": len(part), "files": rec["files"]})
    finally:
        if bar is not None:
            bar.close()

    index = {
        "format": PACK_FORMAT,
        "source": source,
        "preprocess": plan["preprocess"],
        "settings": settings,
        "count": len(rels),
        "identities": {ident: identities[ident] for ident in sorted(identities)},
        "items": {rel: i for i, rel in enumerate(rels)},
        "parts": parts,
        "content_sha256": digest([p["files"] for p in parts], 64),
        "dropped": plan["dropped"],
        "versions": _versions(),
        "stats": {"parts_reused": len(keep), "parts_written": len(bounds) - len(keep),
                  "images_written": len(rels) - done_images, "seconds": round(time.perf_counter() - t0, 3)},
    }
    atomic_write_text(index_file, json.dumps(index, indent=1) + "\n")
    try:
        open_packed(out)  # what a reader checks on open
    except CorruptPackError as err:  # pragma: no cover - a bug in the writer, not a user error
        raise RuntimeError(f"pack wrote an inconsistent set: {err}") from None
    return index


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("facematch", "litdata"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out
