"""The manifest of an aligned-crop cache folder: what its crops depend on, and the last ``prepare`` runs.

``OUT/manifest.json`` holds the key's components (cache format, template, detector settings, resolved
source folder ``src_root``) and the ``key`` they hash to, the library versions that shaped the crops, and,
after a ``prepare`` run, its counts and timings (:func:`facematch.faces.prepare.summarize`) with ``runs``,
the timings of the last 20 runs. It is written with ``complete: false`` when a cache is first used. A
folder in an older format is never read (:func:`old_format_error`).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
from PIL import Image

from facematch.errors import FacematchError
from facematch.utils.io import atomic_write_text
from facematch.utils.untrusted import MIB, read_json

#: Version of the on-disk layout; a folder in another one is refused, never read.
CACHE_FORMAT = "facematch-aligned-crops/2"
MANIFEST = "manifest.json"


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


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """``folder``'s manifest, ``None`` when it has none; a damaged one is a one-line error."""
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    return read_json(p, 16 * MIB, "cache manifest", "delete it (crops are kept) and re-run", FacematchError)


def write_manifest(folder: str | os.PathLike, data: dict) -> None:
    atomic_write_text(Path(folder) / MANIFEST, json.dumps(data, indent=2) + "\n")


def differences(made: dict, asked: dict, prefix: str = "") -> list[str]:
    """``key=made (not asked)`` for every setting that differs, nested dicts flattened."""
    out = []
    for k in asked:
        a, m = asked[k], made.get(k)
        if isinstance(a, dict) and isinstance(m, dict):
            out += differences(m, a, f"{prefix}{k}.")
        elif a != m:
            out.append(f"{prefix}{k}={m} (not {a})")
    return out
