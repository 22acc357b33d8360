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


def add_lfw_arguments(parser) -> None:
    """``--src`` (raw LFW photos), ``--reference`` (lfw-aligned-112) and ``--pairs`` (pairs.txt), with
    defaults under :func:`data_dir`: the inputs of the alignment-checking scripts in ``scripts/``."""
    d = data_dir()
    parser.add_argument("--src", default=str(d / "lfw" / "lfw-deepfunneled"), help="raw LFW photos")
    parser.add_argument("--reference", default=str(d / "lfw-aligned-112"), help="reference aligned crops")
    parser.add_argument("--pairs", default=str(d / "lfw" / "pairs.txt"), help="the images of this pairs file")


def calibration_dir() -> Path:
    """``$FACEMATCH_CALIBRATION_DIR`` or ``<cache dir>/calibrations``: ``<sha256>.json`` operating points of
    weights files whose own folder cannot be written (``facematch-calibrate``)."""
    env = os.environ.get("FACEMATCH_CALIBRATION_DIR")
    return Path(env).expanduser() if env else cache_dir() / "calibrations"
