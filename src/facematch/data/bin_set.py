"""insightface validation files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...) read as an image source.

Such a file is a pickle of ``(bins, issame_list)``: ``bins`` holds 2 x N encoded images (JPEG or PNG bytes,
already aligned to 112x112, insightface's arcface template), pair i is images 2i and 2i + 1, and
``issame_list[i]`` says whether they show the same person. Files written by Python 2 hold ``str`` images
(read as bytes); some hold numpy arrays of the bytes.

Safety: the file is never unpickled. :mod:`facematch.data.bin_pickle` walks its opcodes and builds only the
structure insightface writes (lists, tuples, bytes, bools; 1-D uint8 / bool numpy arrays rebuilt as bytes),
within :class:`~facematch.data.bin_pickle.Limits`; anything else is one line naming the file.

:class:`BinSet` is a reader in the shape of :class:`facematch.data.shards.PackedSet` (``rel -> bytes``,
``root``, ``content_digest``, ``name``, ``preprocess``), so a :class:`~facematch.data.source.FaceSource`
decodes its images per batch like any other file. The encoded bytes are kept once; identical images
(LFW's pairs reuse an image in several pairs) share one name, so they are decoded and embedded once.
An image's name (``rel``) is the index of its first occurrence in the file, e.g. ``00017``.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from facematch.data.bin_pickle import Limits, PickleRefused, read_pair_pickle, shown
from facematch.errors import DataNotFoundError, MalformedFileError

#: What insightface's validation images are aligned to.
BIN_TEMPLATE = "arcface_112x112"
FIX = "use an insightface validation file (a pickle of (bins, issame_list)), or write one with `facematch-data pack-bin`"
LIMITS = Limits()


def is_bin(root) -> bool:
    """Whether ``root`` names a file (not a folder): the one kind of file-backed image source, a ``.bin``."""
    return Path(str(root)).expanduser().is_file()


def _file_bytes(p: Path, limits: Limits) -> bytes:
    try:
        size = p.stat().st_size
        if size > limits.file_bytes:
            raise MalformedFileError(f"{shown(str(p), 200)} has {size} bytes, more than a validation file may have "
                                     f"({limits.file_bytes}; limit: file_bytes); {FIX}")
        with p.open("rb") as fh:
            return fh.read(size)  # at most the size checked (a file that grows since reads as truncated)
    except OSError as err:
        raise MalformedFileError(f"{shown(str(p), 200)} cannot be read ({type(err).__name__}: "
                                 f"{shown(err.strerror or '', 60)}); check the path and its permissions") from None


def load_bin(path: str | os.PathLike, limits: Limits = LIMITS) -> tuple[list[bytes], list[bool], str]:
    """``(images, issame, sha256)`` of an insightface validation file, read by
    :func:`~facematch.data.bin_pickle.read_pair_pickle` (nothing in the file is run); one-line
    :class:`MalformedFileError` for anything but ``(bins, issame_list)`` with two images a pair, a truncated
    or unreadable file, and a file over any of ``limits``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataNotFoundError(f"validation file not found: {shown(str(p), 200)} (data.path=FILE.bin)")
    data = _file_bytes(p, limits)
    try:
        images, issame = read_pair_pickle(data, limits)
    except PickleRefused as err:
        raise MalformedFileError(f"{shown(str(p), 200)} refused: it {err}; {FIX}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as err:  # never seen: the walker refuses first
        raise MalformedFileError(f"{shown(str(p), 200)} refused ({type(err).__name__}); {FIX}") from None
    if len(images) != 2 * len(issame) or not issame:
        raise MalformedFileError(f"{shown(str(p), 200)} holds {len(images)} images for {len(issame)} pairs "
                                 f"(expected 2 per pair); {FIX}")
    return images, issame, hashlib.sha256(data).hexdigest()


class BinSet:
    """The images of one validation file by name (``rel -> bytes``) and its pairs ``(rel_a, rel_b, same)``."""

    key_tag = "bin"

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path).expanduser()
        images, issame, self.content_digest = load_bin(self.root)
        first: dict[bytes, str] = {}
        names = [first.setdefault(b, f"{i:05d}") for i, b in enumerate(images)]
        self._bytes = {name: b for b, name in first.items()}
        self.pairs = [(names[2 * i], names[2 * i + 1], same) for i, same in enumerate(issame)]

    @property
    def preprocess(self) -> dict:
        return {"mode": "prealigned", "template": BIN_TEMPLATE}

    @property
    def rels(self) -> list[str]:
        return list(self._bytes)

    def __len__(self) -> int:
        return len(self._bytes)

    def read(self, rel: str) -> bytes:
        try:
            return self._bytes[rel]
        except KeyError:
            raise DataNotFoundError(f"image {rel} is not in {self.root}") from None

    __call__ = read

    def name(self, rel: str) -> str:
        return f"{self.root}::{rel}"


@lru_cache(maxsize=4)
def _open_cached(path: str, stamp: tuple) -> BinSet:
    return BinSet(path)


def open_bin(path) -> BinSet:
    """:class:`BinSet` of ``path``, read once per file version in a process (the pairs and the image source
    of one evaluation ask for the same file)."""
    p = Path(str(path)).expanduser().resolve()
    try:
        st = p.stat()
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = ()
    return _open_cached(str(p), stamp)
