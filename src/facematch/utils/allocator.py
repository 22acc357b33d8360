"""glibc malloc settings that stop large tensors from costing a page fault per 4 KiB page.

By default glibc serves every allocation above a (dynamic) threshold of at most 32 MiB with a fresh
``mmap`` and returns it to the OS on ``free``. A CNN forward pass allocates and frees activations of
tens of MB per layer, so each one is mapped anew and faulted in page by page: system time exceeds user
time and a plain forward loop runs several times slower (docs/speed.md). Raising the mmap and trim
thresholds keeps those blocks in the heap and reuses them.

Written by hand because no allocator package installs through ``uv sync`` and takes effect in a running
interpreter (jemalloc / tcmalloc need ``LD_PRELOAD`` before the process starts). :func:`tune` calls
``mallopt``; the entry points call it first thing (importing ``facematch`` changes nothing): forked children
inherit the settings, spawned ones (the alignment pool) call it in their initializer. The matching ``MALLOC_*_``
variables are not exported: set at a child's start-up, glibc took them differently (a training job then
spent several times more system time in page faults; docs/speed.md); a value the user set there is used as given.
``FACEMATCH_MALLOC=0`` turns it off (for measuring the difference).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

#: Blocks below this are never given their own mmap (glibc accepts up to half its heap limit on 64 bit).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap is returned to the OS only above this.
TRIM_THRESHOLD = 1 << 30
#: Extra heap requested at each growth, so a growing batch does not call brk per layer.
TOP_PAD = 64 << 20

SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    "MALLOC_TOP_PAD_": (M_TOP_PAD, TOP_PAD),
}

_state: dict = {}


def enabled() -> bool:
    return os.environ.get("FACEMATCH_MALLOC", "1").lower() not in ("0", "false", "off", "no")


def tune() -> dict:
    """Apply the settings once per process; returns what was done (``{"applied": bool, ...}``)."""
    if _state:
        return _state
    if not enabled():
        _state.update(applied=False, reason="FACEMATCH_MALLOC=0")
        return _state
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _state.update(applied=False, reason=f"not glibc ({platform.system()} {platform.libc_ver()[0] or '?'})")
        return _state
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname (checked above); find_library would run ldconfig
        mallopt = libc.mallopt
    except (OSError, AttributeError) as err:
        _state.update(applied=False, reason=f"no mallopt ({err})")
        return _state
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    results = {}
    for env, (param, value) in SETTINGS.items():
        chosen = os.environ.get(env, str(value))  # a user's own value wins
        try:
            results[env] = bool(mallopt(param, int(chosen)))
        except ValueError:  # not a number: glibc ignores it too; leave that setting alone
            results[env] = False
    _state.update(applied=all(results.values()), settings={k: os.environ.get(k, str(SETTINGS[k][1])) for k in SETTINGS}, mallopt=results)
    return _state
