"""Atomic file writes, content hashing and source-file stamps: nothing half-written is ever left where a
reader looks, and a cache entry can tell whether the file it was made from has changed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, writer: Callable[[io.BufferedWriter], Any], durable: bool = True) -> Path:
    """Write via ``writer(fileobj)`` into a temp file beside ``path``, fsync, then rename over it.

    ``durable=False`` skips the fsync: the rename still never exposes a half-written file to a reader, but
    after a power cut the file may be empty; for entries their reader checks and re-makes (aligned crops)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0666 less the umask), so a gallery,
        # cache or results file is as readable by the other users of a shared folder as any other file.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def digest(obj: Any, n: int = 12) -> str:
    """First ``n`` hex digits of the sha256 of ``obj`` as canonical JSON: a cache key's digest part."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def resolved(path: str | os.PathLike) -> str:
    """``path`` with ``~`` expanded and links resolved: the spelling a cache records for a source folder."""
    return str(Path(path).expanduser().resolve())


#: The stamp of a file that could not be stat'ed (or of an entry made without a source file).
NO_STAMP = (-1, -1)


def file_stamp(path: str | os.PathLike) -> tuple[int, int]:
    """``(st_size, st_mtime_ns)`` of ``path``: what a cache entry records of the file it was made from.

    Raises ``FileNotFoundError`` when ``path`` does not exist.
    """
    st = os.stat(path)
    return int(st.st_size), int(st.st_mtime_ns)


def stamp_before_reading(path: str | os.PathLike) -> tuple[int, int]:
    """:func:`file_stamp`, taken before ``path`` is read (a file changed meanwhile is re-made next time);
    :data:`NO_STAMP` when it cannot be stat'ed (reading it then raises the user error)."""
    try:
        return file_stamp(path)
    except OSError:
        return NO_STAMP


def stamp_problem(path: str | os.PathLike, recorded: tuple[int, int] | None) -> tuple[str, str] | None:
    """Why a cache entry made from ``path`` with stamp ``recorded`` must not be served, or ``None``:
    ``("foreign", why)`` when the file is gone, ``("stale", why)`` when it changed or nothing was recorded."""
    try:
        now = file_stamp(path)
    except OSError:
        return "foreign", f"source file {path} is missing"
    if recorded is None or tuple(recorded) == NO_STAMP:
        return "stale", "no source stamp recorded (made by an older version)"
    if tuple(recorded) != now:
        return "stale", f"source file changed (size, mtime_ns {tuple(recorded)} -> {now})"
    return None


#: Temporaries older than this (seconds) are left over from a killed run: :func:`remove_stale_tmp` removes them.
STALE_TMP_S = 60.0


def remove_stale_tmp(folder: str | os.PathLike, older_than_s: float | None = None) -> int:
    """Delete the temporaries :func:`atomic_write` leaves when killed (``.<name>.*.tmp``) under ``folder``;
    returns how many. Only those older than ``older_than_s`` (default :data:`STALE_TMP_S`), so a write in
    flight in another process (a DataLoader worker filling a cache on demand) is left alone."""
    older_than_s = STALE_TMP_S if older_than_s is None else older_than_s
    n, now = 0, time.time()
    for dirpath, _, filenames in os.walk(folder):
        for f in filenames:
            if f.startswith(".") and f.endswith(".tmp"):
                p = Path(dirpath, f)
                try:
                    if now - p.stat().st_mtime > older_than_s:
                        p.unlink()
                        n += 1
                except FileNotFoundError:
                    pass
    return n
