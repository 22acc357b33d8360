"""Checking an aligned-crop cache folder against its source files, without changing anything
(``facematch-data check-cache``)."""

from __future__ import annotations

import os
from pathlib import Path

from facematch.faces.crop_cache import CROP_SUFFIX, read_record, record_stamp
from facematch.faces.manifest import CACHE_FORMAT, old_format_error, read_manifest
from facematch.utils.io import resolved, stamp_problem


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
