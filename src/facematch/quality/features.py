"""Raw backbone features of degraded crops, computed once and cached: the inputs of every quality figure.

A *crop spec* is ``(rel, degradation or None, draw)``: image ``rel`` of an undegraded
:class:`~facematch.data.source.FaceSource`, made low-quality by a
:class:`~facematch.data.degrade.Degradation` (its draw ``draw``: deterministic per image and draw). The
features are the backbone's per-view outputs before normalisation (``(N, V, D)``, view 0 the plain crop,
view 1 its mirror with ``flip="concat"``), embedded by the same :class:`~facematch.embedding.embedder.Embedder`
as ``facematch-eval``. They are cached as one ``.npz`` per list of specs under
``<cache>/quality/`` (keyed by the weights, the source and the specs; written atomically).
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from facematch.data.degrade import Degradation
from facematch.embedding.embedder import Embedder
from facematch.utils.io import atomic_write_bytes, digest

log = logging.getLogger(__name__)

Spec = tuple[str, Degradation | None, int]
CHUNK = 256


def spec_key(spec: Spec) -> tuple:
    rel, deg, draw = spec
    return (rel, None if deg is None else tuple(sorted(deg.describe().items())), int(draw))


def crop(source, spec: Spec) -> np.ndarray:
    rel, deg, draw = spec
    c = source(rel)
    return c if deg is None else deg(c, rel, draw)


def embed_specs(model, source, specs: Sequence[Spec], *, flip: str = "concat", cache_dir: str | Path | None = None,
                batch_size: int = 128, what: str = "crops") -> np.ndarray:
    """``(N, V, D)`` raw per-view features of ``specs`` (``source`` serves undegraded crops)."""
    key = digest([model.fingerprint, source.key, str(Path(source.root).resolve()), flip, [spec_key(s) for s in specs]], 24)
    path = Path(cache_dir) / "quality" / f"{what}-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return z["views"]
    emb = Embedder(model.module, model.spec, flip=flip, batch_size=batch_size, progress=False)
    t0, out = time.perf_counter(), []
    row = {}  # the same crop (an undegraded image in several pairs) is embedded once
    keys = [row.setdefault(repr(spec_key(s)), len(row)) for s in specs]
    unique = list({repr(spec_key(s)): s for s in specs}.values())
    for i in range(0, len(unique), CHUNK):
        out.append(emb.forward_views(np.stack([crop(source, s) for s in unique[i: i + CHUNK]])))
    views = (np.concatenate(out) if out else np.zeros((0, 1, 0), np.float32))[np.asarray(keys, np.int64)]
    log.info("quality: %d %s (%d distinct) embedded in %.1f s", len(specs), what, len(unique), time.perf_counter() - t0)
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, views=views)
        atomic_write_bytes(path, buf.getvalue())
    return views
