"""insightface validation files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...) read as an image source.

Such a file is a pickle of ``(bins, issame_list)``: ``bins`` holds 2 x N encoded images (JPEG or PNG bytes,
already aligned to 112x112, insightface's arcface template), pair i is images 2i and 2i + 1, and
``issame_list[i]`` says whether they show the same person. Files written by Python 2 hold ``str`` images
(read as bytes); some hold numpy arrays of the bytes.

Safety: a pickle can name any importable callable and call it while it is read. :class:`BinUnpickler`
admits no global but numpy's array-rebuilding functions, so reading a file never runs anything it names;
there is no library for this (``pickle`` offers the ``find_class`` hook and nothing more; the formats
that avoid pickle, safetensors or ``numpy.load(allow_pickle=False)``, do not read these files).

:class:`BinSet` is a reader in the shape of :class:`facematch.data.shards.PackedSet` (``rel -> bytes``,
``root``, ``content_digest``, ``name``, ``preprocess``), so a :class:`~facematch.data.source.FaceSource`
decodes its images per batch like any other file. The encoded bytes are kept once; identical images
(LFW's pairs reuse an image in several pairs) share one name, so they are decoded and embedded once.
An image's name (``rel``) is the index of its first occurrence in the file, e.g. ``00017``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from functools import lru_cache
from pathlib import Path

from facematch.errors import DataNotFoundError, MalformedFileError

#: What insightface's validation images are aligned to.
BIN_TEMPLATE = "arcface_112x112"
#: The only globals a validation file may name: numpy's array reconstruction (numpy 1 and 2 module names),
#: and ``_codecs.encode``, which pickles of protocol 0-2 written by Python 3 call to rebuild ``bytes`` (text
#: to bytes through a codec of the standard library's ``encodings`` package: nothing else can be reached).
ALLOWED_GLOBALS = frozenset({
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"),
    ("numpy", "dtype"),
})
FIX = "pass an insightface validation file (a pickle of (bins, issame_list)), or write one with `facematch-data pack-bin`"


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.what = f"{module}.{name}"


class BinUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (no other callable is ever looked up)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(module, name)
        return super().find_class(module, name)


def is_bin(root) -> bool:
    """Whether ``root`` names a file (not a folder): the one kind of file-backed image source, a ``.bin``."""
    return Path(str(root)).expanduser().is_file()


def _as_bytes(item, path: Path, i: int) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if type(item).__module__ == "numpy" and getattr(item, "dtype", None) is not None and item.dtype.kind in "uiS":
        return item.tobytes()
    raise MalformedFileError(f"{path}: image {i} is a {type(item).__name__}, not encoded image bytes; {FIX}")


def load_bin(path: str | os.PathLike) -> tuple[list[bytes], list[bool], str]:
    """``(images, issame, sha256)`` of an insightface validation file, read by :class:`BinUnpickler`;
    one-line :class:`MalformedFileError` for a refused global, a truncated or non-pickle file, or a pickle
    of anything but ``(bins, issame_list)`` with ``len(bins) == 2 * len(issame_list)``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataNotFoundError(f"validation file not found: {p} (data.path=FILE.bin)")
    data = p.read_bytes()
    try:
        obj = BinUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as err:
        raise MalformedFileError(f"{p} refused: its pickle names {err.what}, which a validation file never "
                                 "needs (only lists, tuples, bytes, bools, ints and numpy arrays are read; nothing "
                                 "was run); use a file from a source you trust, or re-write it with "
                                 "`facematch-data pack-bin`") from None
    except EOFError:
        raise MalformedFileError(f"{p} is truncated (the pickle ends early); download or write it again") from None
    except Exception as err:  # any malformed byte stream: pickle raises several types
        raise MalformedFileError(f"{p} is not a readable pickle ({type(err).__name__}); {FIX}") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise MalformedFileError(f"{p} holds a {type(obj).__name__}, not (bins, issame_list); {FIX}")
    bins, issame = obj
    try:
        issame = [bool(s) for s in issame]
        n_images = len(bins)
    except TypeError:
        raise MalformedFileError(f"{p}: bins or issame_list is not a sequence; {FIX}") from None
    if n_images != 2 * len(issame) or not issame:
        raise MalformedFileError(f"{p} holds {n_images} images for {len(issame)} pairs (expected 2 per pair); {FIX}")
    images = [_as_bytes(b, p, i) for i, b in enumerate(bins)]
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
