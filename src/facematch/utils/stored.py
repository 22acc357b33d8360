"""Documents stored beside a model's weights (its calibration, its quality head): where one may be, and the
first that belongs to these weights. Both stores look in the same places, in the same order:

1. a sidecar next to the weights file (``<weights><suffix>``);
2. ``<cache folder>/<sha256 of the weights>.json``;
3. the shipped ``<package>/shipped/<sha256>.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from facematch.errors import FacematchError

T = TypeVar("T")


def sidecar_path(weights: str, suffix: str) -> Path:
    return Path(str(Path(weights).expanduser()) + suffix)


def candidate_files(fingerprint: str, weights: str | None, suffix: str, cache_folder: Path,
                    shipped_folder: Path) -> list[Path]:
    """Where a document of the weights ``fingerprint`` may be, in lookup order (the module docstring)."""
    files = [sidecar_path(weights, suffix)] if weights else []
    return files + [cache_folder / f"{fingerprint}.json", shipped_folder / f"{fingerprint}.json"]


def first_for_weights(files: list[Path], read: Callable[[Path], T], fingerprint: str, other_weights: str,
                      notes: list[str]) -> T | None:
    """The first of ``files`` that exists, reads, and names ``fingerprint``; what was passed over and why is
    appended to ``notes`` (an unreadable file: its one error line; another model's: ``other_weights``)."""
    for f in files:
        if not f.is_file():
            continue
        try:
            doc = read(f)
        except FacematchError as err:
            notes.append(str(err))
            continue
        if doc.fingerprint != fingerprint:
            notes.append(f"{f}: {other_weights} (sha256 {doc.fingerprint[:12]}...; ignored)")
            continue
        return doc
    return None
