"""Readers for verification protocol files, and the one place where a pair's fold is decided.

Formats:
- LFW ``pairs.txt`` (View 2): header ``<n_folds>\\t<n_per_class>``, then per fold ``n`` matched lines
  ``name i j`` followed by ``n`` mismatched lines ``name1 i name2 j``. Images are 1-based:
  ``name i`` -> ``name/name_%04d.jpg``. The fold of a pair is its position in file order.
- LFW View 1 (``pairsDevTrain.txt`` / ``pairsDevTest.txt``): header ``<n>``, then ``n`` matched and ``n``
  mismatched lines; everything is fold 0.
- Pair list: ``pathA pathB label`` (label 1 = same person), paths relative to the dataset root.
- Triplet list: ``anchor positive negative``.
- insightface validation file (``*.bin``, :mod:`facematch.data.bin_set`): its pairs, images named by index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facematch.errors import DataNotFoundError, MalformedFileError
from facematch.utils.untrusted import MIB, read_bounded, relative_name

BIN_SUFFIX = ".bin"
#: Bounds of a pairs file or list (LFW's pairs.txt: 6,001 lines, 90 KB).
MAX_BYTES = 64 * MIB
MAX_LINES = 1_000_000
MAX_LINE_CHARS = 4096


@dataclass(frozen=True)
class Pair:
    a: str  # image path relative to the dataset root
    b: str
    same: bool
    fold: int = 0


@dataclass(frozen=True)
class Triplet:
    anchor: str
    positive: str
    negative: str


def lfw_image_path(name: str, index: int | str) -> str:
    """``("Aaron_Peirsol", 1)`` -> ``"Aaron_Peirsol/Aaron_Peirsol_0001.jpg"``."""
    return f"{name}/{name}_{int(index):04d}.jpg"


def identity_of(rel_path: str) -> str:
    """The identity of an image is its parent folder (LFW and VGGFace2 layouts)."""
    parts = Path(rel_path).parts
    return parts[-2] if len(parts) >= 2 else parts[0]


def _read_lines(path: str | os.PathLike, what: str) -> list[tuple[int, list[str]]]:
    """The non-blank lines of ``path`` split into fields, with their line numbers; a file over
    :data:`MAX_BYTES` or :data:`MAX_LINES`, a line over :data:`MAX_LINE_CHARS`, or not UTF-8: one line."""
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{what} not found: {p} (pass an existing file, e.g. data.pairs=PATH)")
    fix = f"pass a {what} of at most {MAX_LINES:,} lines of {MAX_LINE_CHARS} characters"
    try:
        text = read_bounded(p, MAX_BYTES, what, fix).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFileError(f"{p} is not a text {what}; expected UTF-8 lines") from None
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise MalformedFileError(f"{p} has {len(lines):,} lines, over the {MAX_LINES:,}-line limit; {fix}")
    out = []
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise MalformedFileError(f"{p}:{n}: a line of {len(line):,} characters, over {MAX_LINE_CHARS}; {fix}")
        if line.strip():
            out.append((n, line.split()))
    return out


def _paths(path, lineno: int, expected: str, fields: list[str], names: list[str], folder: bool = False) -> None:
    """Refuse a line naming an image (or, ``folder``, a person) by anything but a relative path inside the
    dataset root: an absolute path, a ``..``, a control character (or, for a person, a ``/``)."""
    if not all(relative_name(n) and not (folder and "/" in n) for n in names):
        raise _bad(path, lineno, f"{expected} with paths relative to the dataset root (no '/' start or '..')", fields)


def _bad(path, lineno: int, expected: str, got: list[str]) -> MalformedFileError:
    shown = " ".join(got)[:80]
    return MalformedFileError(f"{path}:{lineno}: expected {expected}, got '{shown}'; fix or remove that line")


def _int(path, lineno, tok, expected, fields) -> int:
    try:
        return int(tok)
    except ValueError:
        raise _bad(path, lineno, expected, fields) from None


def read_lfw_pairs(path: str | os.PathLike) -> list[Pair]:
    """Read LFW ``pairs.txt`` (View 2) or a View 1 file; folds follow file order."""
    lines = _read_lines(path, "pairs file")
    if not lines:
        raise MalformedFileError(f"{path} is empty; expected an LFW pairs.txt header such as '10 300'")
    lineno, header = lines[0]
    hdr = "a header '<n_folds> <n_per_class>' or '<n_per_class>'"
    if len(header) == 2:
        n_folds, per_class = (_int(path, lineno, t, hdr, header) for t in header)
    elif len(header) == 1:
        n_folds, per_class = 1, _int(path, lineno, header[0], hdr, header)
    else:
        raise _bad(path, lineno, hdr, header)
    body = lines[1:]
    expected_n = n_folds * 2 * per_class
    if len(body) != expected_n:
        raise MalformedFileError(
            f"{path}: header promises {n_folds} folds x 2 x {per_class} = {expected_n} pairs "
            f"but the file has {len(body)}; use an unmodified pairs.txt"
        )
    pairs = []
    for k, (lineno, f) in enumerate(body):
        fold, pos = divmod(k, 2 * per_class)
        if pos < per_class:
            if len(f) != 3:
                raise _bad(path, lineno, "a matched pair 'name i j'", f)
            _paths(path, lineno, "a matched pair 'name i j'", f, f[:1], folder=True)
            i = _int(path, lineno, f[1], "a matched pair 'name i j'", f)
            j = _int(path, lineno, f[2], "a matched pair 'name i j'", f)
            pairs.append(Pair(lfw_image_path(f[0], i), lfw_image_path(f[0], j), True, fold))
        else:
            if len(f) != 4:
                raise _bad(path, lineno, "a mismatched pair 'name1 i name2 j'", f)
            _paths(path, lineno, "a mismatched pair 'name1 i name2 j'", f, [f[0], f[2]], folder=True)
            i = _int(path, lineno, f[1], "a mismatched pair 'name1 i name2 j'", f)
            j = _int(path, lineno, f[3], "a mismatched pair 'name1 i name2 j'", f)
            pairs.append(Pair(lfw_image_path(f[0], i), lfw_image_path(f[2], j), False, fold))
    return pairs


def read_pair_list(path: str | os.PathLike, n_folds: int = 1) -> list[Pair]:
    """Read ``pathA pathB label`` lines. With ``n_folds > 1`` folds are contiguous blocks in file order."""
    lines = _read_lines(path, "pair list")
    pairs = []
    for lineno, f in lines:
        if len(f) != 3 or f[2] not in ("0", "1"):
            raise _bad(path, lineno, "'pathA pathB label' with label 0 or 1", f)
        _paths(path, lineno, "'pathA pathB label'", f, f[:2])
        pairs.append(Pair(f[0], f[1], f[2] == "1", 0))
    return with_contiguous_folds(pairs, n_folds)


def with_contiguous_folds(pairs: list[Pair], n_folds: int) -> list[Pair]:
    """``pairs`` split into ``n_folds`` contiguous blocks in order (the folds of a list or a ``.bin`` file)."""
    if n_folds <= 1:
        return pairs
    size = -(-len(pairs) // n_folds)
    return [Pair(p.a, p.b, p.same, i // size) for i, p in enumerate(pairs)]


def read_triplet_list(path: str | os.PathLike) -> list[Triplet]:
    lines = _read_lines(path, "triplet list")
    out = []
    for lineno, f in lines:
        if len(f) != 3:
            raise _bad(path, lineno, "'anchor positive negative'", f)
        _paths(path, lineno, "'anchor positive negative'", f, f)
        out.append(Triplet(*f))
    return out


def sniff_format(path: str | os.PathLike) -> str:
    """'lfw' for pairs.txt / View 1 files, 'list' for ``pathA pathB label`` lines, 'bin' for an insightface
    validation file (:mod:`facematch.data.bin_set`)."""
    if Path(path).suffix == BIN_SUFFIX:
        return "bin"
    lines = _read_lines(path, "pairs file")
    if not lines:
        raise MalformedFileError(f"{path} is empty; expected pairs")
    first = lines[0][1]
    if all(t.isdigit() for t in first) and len(first) in (1, 2):
        return "lfw"
    return "list"


def read_pairs(path: str | os.PathLike, n_folds: int = 10) -> list[Pair]:
    """Read any format. A plain list or a ``.bin`` file is split into ``n_folds`` contiguous folds."""
    kind = sniff_format(path)
    if kind == "lfw":
        return read_lfw_pairs(path)
    if kind == "bin":
        from facematch.data.bin_set import open_bin

        return with_contiguous_folds([Pair(a, b, same) for a, b, same in open_bin(path).pairs], n_folds)
    return read_pair_list(path, n_folds=n_folds)


def pair_arrays(pairs: list[Pair], paths: list[str]):
    """``(ia, ib, same, folds)`` for scoring ``pairs`` from embeddings in ``paths`` order: row indices of
    each pair's two images, the labels (bool) and the folds, as numpy arrays in pair order."""
    row = {p: i for i, p in enumerate(paths)}
    return (np.array([row[p.a] for p in pairs], dtype=np.int64), np.array([row[p.b] for p in pairs], dtype=np.int64),
            np.array([p.same for p in pairs], dtype=bool), np.array([p.fold for p in pairs]))


def fold_identities(pairs: list[Pair], fold: int) -> set[str]:
    """Every person that appears in the pairs of ``fold``."""
    out: set[str] = set()
    for p in pairs:
        if p.fold == fold:
            out.add(identity_of(p.a))
            out.add(identity_of(p.b))
    return out
