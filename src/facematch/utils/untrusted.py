"""Reading files a user may have from elsewhere (a download, a colleague's drive): the shared checks.

Every reader of such a file (packed shards' indexes, calibrations, gallery manifests, pair lists, ONNX
models, images) reads it through :func:`read_bounded` (one open file, its size checked against a bound
before anything is read) or :func:`read_json` (that, then JSON that must be an object), and checks that a
path named inside it stays in the folder it belongs to with :func:`inside`. Each failure is one
:class:`~facematch.errors.FacematchError` line naming the file (``what``) and the fix; what the file says
is quoted with :func:`~facematch.errors.one_line` by the CLI edge. What each reader then accepts is an
allow list of the structure facematch writes (docs/security.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from facematch.errors import FacematchError, MalformedFileError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def size_text(n: int) -> str:
    """``1536`` -> ``1.5 KiB``: a bound or a size in a message."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def read_bounded(path: str | os.PathLike, max_bytes: int, what: str, fix: str,
                 error: type[FacematchError] = MalformedFileError) -> bytes:
    """The bytes of ``path`` (a regular file of at most ``max_bytes``), read through one open file whose
    ``fstat`` is checked first; a missing, unreadable, special or oversized file is one ``error`` line."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not _is_regular(st.st_mode):
                raise error(f"{what} {p} is not a regular file; {fix}")
            if st.st_size > max_bytes:
                raise error(f"{what} {p} is {size_text(st.st_size)}, over the {size_text(max_bytes)} limit; {fix}")
            data = fh.read(st.st_size + 1)  # not max_bytes + 1: a buffered read allocates what it is asked for
    except FacematchError:
        raise
    except FileNotFoundError:
        raise error(f"{what} not found: {p}; {fix}") from None
    except OSError as err:
        raise error(f"{what} {p} cannot be read ({err.strerror or type(err).__name__}); {fix}") from None
    if len(data) > st.st_size:  # grew while being read
        raise error(f"{what} {p} changed while it was read; {fix}")
    return data


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def parse_json(data: bytes, name: str, what: str, fix: str, error: type[FacematchError] = MalformedFileError) -> dict:
    """``data`` as a JSON object (UTF-8; no NaN / Infinity); anything else (not JSON, nested past Python's
    recursion limit, an array or a number at the top) is one ``error`` line naming ``name``."""

    def no_constant(token):
        raise ValueError(f"{token} is not JSON")

    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise error(f"{what} {name} is not valid JSON ({type(err).__name__}: {first}); {fix}") from None
    if not isinstance(doc, dict):
        raise error(f"{what} {name} holds a JSON {type(doc).__name__}, not an object; {fix}")
    return doc


def read_json(path: str | os.PathLike, max_bytes: int, what: str, fix: str,
              error: type[FacematchError] = MalformedFileError) -> dict:
    """:func:`read_bounded` then :func:`parse_json`: a JSON object of at most ``max_bytes``, or one line."""
    return parse_json(read_bounded(path, max_bytes, what, fix, error), str(path), what, fix, error)


def relative_name(name: Any) -> bool:
    """Whether ``name`` (as written in a file) is a plain relative POSIX path: not empty, no absolute
    start, no ``..``, ``.`` or empty component, no backslash, NUL or control character."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    if any(not c.isprintable() for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/")) and not PurePosixPath(name).is_absolute()


def inside(folder: str | os.PathLike, name: Any) -> Path | None:
    """``folder / name`` when ``name`` is a :func:`relative_name` and the path, every link resolved, is still
    inside ``folder`` (resolved too); ``None`` otherwise (an absolute path, a ``..`` escape, a link out)."""
    if not relative_name(name):
        return None
    root = Path(folder).resolve()
    target = (root / name).resolve()
    return target if target.is_relative_to(root) and target != root else None
