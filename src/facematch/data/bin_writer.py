"""Write an insightface validation file (``*.bin``) from a pairs file and an image folder.

The file is what insightface's ``arcface_torch`` reads (and :mod:`facematch.data.bin_set` reads back): a
pickle of ``(bins, issame_list)``, ``bins`` the 2 x N encoded 112x112 crops aligned to ``arcface_112x112``
(pair i = images 2i and 2i + 1), ``issame_list`` N bools, pairs in the pairs file's order (its folds are
then consecutive blocks, as insightface's 10-fold split takes them). Files already aligned to that template
are stored as their own bytes (decoding them gives the folder's very pixels); any other crop, and raw photos,
which are first detected and aligned through the aligned-crop cache
(:meth:`facematch.data.source.FaceSource.prepare`), are encoded as ``image_format``.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from facematch.data.pair_files import Pair
from facematch.errors import DataNotFoundError
from facematch.data.bin_set import BIN_TEMPLATE
from facematch.data.source import FaceSource
from facematch.utils.io import atomic_write

#: Pickle protocol of the files written: readable by every Python 3 (insightface's loaders included).
PROTOCOL = 4
IMAGE_FORMATS = ("jpeg", "png")


def encode(crop: np.ndarray, image_format: str = "jpeg", quality: int = 95) -> bytes:
    buf = io.BytesIO()
    kw = {"quality": int(quality)} if image_format == "jpeg" else {}
    Image.fromarray(crop).save(buf, format=image_format.upper(), **kw)
    return buf.getvalue()


def _copies_files(source: FaceSource) -> bool:
    """Whether ``source``'s files are already the crops a .bin holds (their bytes can be stored as they are)."""
    return (source.mode == "prealigned" and source.src_template is not None
            and source.src_template.name == BIN_TEMPLATE and source.degrade is None and source.reader is None)


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"image not found: {path} (the pairs file names it; check the image folder)") from None


def write_bin(pairs: list[Pair], source: FaceSource, out: str | os.PathLike, *, image_format: str = "jpeg",
              quality: int = 95, progress: bool = True) -> dict:
    """Write ``pairs`` (images served by ``source``, built for :data:`BIN_TEMPLATE`) to ``out``, atomically.
    Returns ``{"pairs", "images", "encoded", "copied", "bytes", "aligned"}``."""
    if source.template.name != BIN_TEMPLATE:
        raise ValueError(f"a .bin holds {BIN_TEMPLATE} crops; the source serves {source.template.name}")
    rels = list(dict.fromkeys(r for p in pairs for r in (p.a, p.b)))
    aligned = source.prepare(rels, progress=progress)  # raw photos: detect and align once, on all cores
    copy = _copies_files(source)
    items = rels
    if progress:
        import sys

        from tqdm import tqdm

        items = tqdm(rels, unit="img", desc="pack-bin", file=sys.stderr)
    data = {rel: _file_bytes(source.root / rel) if copy else encode(source(rel), image_format, quality)
            for rel in items}
    bins = [data[r] for p in pairs for r in (p.a, p.b)]
    issame = [bool(p.same) for p in pairs]
    path = atomic_write(Path(out), lambda fh: pickle.dump((bins, issame), fh, protocol=PROTOCOL))
    return {"pairs": len(pairs), "images": len(bins), "distinct": len(rels), "copied": len(rels) if copy else 0,
            "encoded": 0 if copy else len(rels), "bytes": path.stat().st_size, "aligned": aligned}
