"""One writer at a time per folder: an OS file lock on ``FOLDER/.lock`` (a gallery, a pack's output).

The ``filelock`` library (already a dependency of torch) rather than ``fcntl.flock`` by hand: it takes the same
``flock`` on POSIX and a Windows file lock on Windows, polls with a timeout, and the kernel drops the lock when
its holder dies, so a killed writer never leaves a lock behind that someone has to delete. Readers take no
lock: what they read is published by one atomic rename (see the callers), so a writer never waits on them.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from facematch.errors import FacematchError

#: The lock file inside the folder it guards (a dot file: never listed as content).
LOCK_NAME = ".lock"


@contextmanager
def folder_lock(folder: str | Path, *, timeout: float, what: str, fix: str) -> Iterator[None]:
    """Hold the write lock of ``folder`` (created if missing) for the ``with`` block.

    A writer that finds it taken says so once on stderr and waits up to ``timeout`` seconds (``0``: does
    not wait), then stops with one line: ``what`` names the writer (``facematch-gallery``), ``fix`` what to
    do about it (the option that sets the timeout)."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if timeout > 0:
            print(f"{what}: waiting for another process writing {folder} to finish (up to {timeout:g} s)",
                  file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=max(0.0, float(timeout)))
        except Timeout:
            waited = f"waited {timeout:g} s: " if timeout > 0 else ""
            raise FacematchError(f"{folder} is locked by another process writing it ({waited}{path} is held); "
                                 f"{fix}") from None
    try:
        yield
    finally:
        lock.release()
