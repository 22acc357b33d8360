"""Where data, weights and caches live. Environment variables win over defaults."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$FACEMATCH_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("FACEMATCH_DATA_DIR", "data")).expanduser()


def weights_dir() -> Path:
    """``$FACEMATCH_WEIGHTS_DIR`` or ``./weights``."""
    return Path(os.environ.get("FACEMATCH_WEIGHTS_DIR", "weights")).expanduser()


def cache_dir() -> Path:
    """``$FACEMATCH_CACHE_DIR`` or ``./.cache/facematch``: aligned crops, embeddings, features."""
    return Path(os.environ.get("FACEMATCH_CACHE_DIR", ".cache/facematch")).expanduser()
