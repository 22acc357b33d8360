"""User-facing errors: one project exception type, caught once at the CLI edge.

Anything a user can cause (missing file, unreadable image, no face, malformed pairs file, bad config
value) raises a :class:`FacematchError` whose message is a single line naming the input and the fix.
Programming errors are left alone and keep their traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

from facematch.quiet import filter_third_party_warnings

F = TypeVar("F", bound=Callable)


class FacematchError(Exception):
    """An error the user caused and can fix; ``str(err)`` is one line naming the input and the fix."""

    exit_code = 2


class DataNotFoundError(FacematchError):
    exit_code = 2


class MalformedFileError(FacematchError):
    exit_code = 2


class UnreadableImageError(FacematchError):
    exit_code = 5


class NoFaceError(FacematchError):
    exit_code = 3


class MultipleFacesError(FacematchError):
    exit_code = 4


class WeightsError(FacematchError):
    exit_code = 6


def debug_enabled() -> bool:
    return os.environ.get("FACEMATCH_DEBUG", "") not in ("", "0", "false")


def one_line(text: str) -> str:
    """``text`` with every control character (newline, carriage return, escape ...) written as its Python
    escape: a message that quotes a file's contents stays one line and cannot steer the terminal."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def report_and_exit(err: FacematchError) -> None:
    print(f"error: {one_line(err)}", file=sys.stderr)
    sys.exit(err.exit_code)


def run_or_exit(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, with a FacematchError turned into one line and its exit code (the Hydra
    entry points' edge; ``cli_errors`` is the same for argparse entry points). Third-party warnings facematch
    cannot fix are filtered here, once (:mod:`facematch.quiet`)."""
    filter_third_party_warnings()
    try:
        return fn(*args, **kwargs)
    except FacematchError as err:
        if debug_enabled():
            raise
        report_and_exit(err)


def cli_errors(fn: F) -> F:
    """Decorator for console entry points: a FacematchError becomes one line on stderr and its exit code.

    Set FACEMATCH_DEBUG=1 to get the full traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return run_or_exit(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
