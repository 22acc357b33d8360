"""Why a source image could not be aligned: one reason code per failure, and the ``failures.tsv`` list.

Reasons: ``missing``, ``empty``, ``not_image``, ``oversized``, ``corrupt`` (read from the file itself),
``write`` (the crop could not be stored), ``error`` (anything else). Failed images get no crop and are
retried by the next ``prepare`` run.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from facematch.errors import DataNotFoundError, UnreadableImageError
from facematch.faces.images import FORMATS, MAX_PIXELS
from facematch.utils.io import atomic_write_text

FAILURES = "failures.tsv"


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
        with Image.open(p, formats=FORMATS) as im:
            w, h = im.size
    except UnidentifiedImageError:
        return "not_image"
    except Image.DecompressionBombError:
        return "oversized"
    except Exception:
        return "corrupt"
    return "oversized" if w * h > MAX_PIXELS else "corrupt"


def failure_record(rel: str, path: str | os.PathLike, err: Exception) -> dict:
    """The record of one failed source: its reason code and the first line of the error."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return {"rel": rel, "status": "failed", "reason": classify_failure(path, err), "message": msg}


def write_failures(folder: str | os.PathLike, records: list[dict]) -> None:
    """``folder/failures.tsv``: ``path<TAB>reason<TAB>message`` for every failed record, by path."""
    failed = sorted((r for r in records if r["status"] == "failed"), key=lambda r: r["rel"])
    atomic_write_text(
        Path(folder) / FAILURES,
        "path\treason\tmessage\n" + "".join(f"{r['rel']}\t{r['reason']}\t{r['message']}\n" for r in failed),
    )
