"""``facematch-data verify`` and ``check-cache``: a dataset's images (a folder against a pairs file, or a
packed set whole) and the caches against their source files; problems are printed (a few of each kind) and
written to a TSV report. The command line and the rest of ``facematch-data``: :mod:`facematch.cli.data`."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from facematch.errors import DataNotFoundError, FacematchError
from facematch.utils.io import atomic_write_text


def pair_images(pairs_file: str | os.PathLike) -> list[str]:
    """Every distinct image a pairs file (LFW pairs.txt / View 1, or a ``pathA pathB label`` list) uses."""
    from facematch.data.pair_files import read_pairs

    return sorted({p for pair in read_pairs(pairs_file) for p in (pair.a, pair.b)})


def cmd_verify_packed(args: argparse.Namespace) -> int:
    from facematch.data.shards import PackedSet

    packed = PackedSet.open(args.root)
    r = packed.verify(progress=not args.no_progress)
    missing = []
    if args.pairs:
        missing = [rel for rel in pair_images(args.pairs) if rel not in packed]
    print(f"{args.root}: {r['items']} images in {r['parts']} parts, {r['files']} shard files ({r['bytes'] / 1e6:.1f} MB): "
          "sha256 ok, every item read back and decoded"
          + (f"; {len(missing)} image(s) of {args.pairs} missing" if args.pairs else ""))
    rows = [("missing", rel, "") for rel in missing]
    show_problems(rows, ("missing",), args.show, args.report, ("problem", "path", "message"))
    return 1 if rows else 0


def cmd_verify_bin(args: argparse.Namespace) -> int:
    """An insightface ``.bin``: read without running it (a hostile file is one error line), every image decoded."""
    from facematch.data.bin_set import BinSet
    from facematch.faces.images import load_image_bytes

    s = BinSet(args.root)
    rows = []
    for rel in s.rels:
        try:
            load_image_bytes(s(rel), s.name(rel))
        except FacematchError as err:
            rows.append(("unreadable", s.name(rel), str(err)))
    print(f"{args.root}: {len(s.pairs)} pairs, {len(s)} distinct images: read without running anything, "
          f"{len(s) - len(rows)} decoded, {len(rows)} unreadable")
    show_problems(rows, ("unreadable",), args.show, args.report, ("problem", "path", "message"))
    return 1 if rows else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from facematch.data.bin_set import is_bin
    from facematch.data.shards import is_packed
    from facematch.faces.images import load_image

    if is_packed(args.root):
        return cmd_verify_packed(args)
    if is_bin(args.root):
        return cmd_verify_bin(args)
    if not args.pairs:
        raise FacematchError(f"verify {args.root} needs --pairs FILE (the images to check); only a packed set "
                             "(facematch-data pack) is checked whole without one")
    root = Path(args.root)
    if not root.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {root} (pass the folder holding <identity>/<file>)")
    rels = pair_images(args.pairs)
    missing, unreadable = [], []
    it = rels
    if not args.no_progress:
        from tqdm import tqdm

        it = tqdm(rels, unit="img", desc="verify", file=sys.stderr)
    for rel in it:
        path = root / rel
        if not path.is_file():
            missing.append(rel)
            continue
        try:
            load_image(path)
        except FacematchError as err:
            unreadable.append((rel, str(err)))
    print(f"{len(rels)} images used by {args.pairs}: {len(rels) - len(missing) - len(unreadable)} ok, "
          f"{len(missing)} missing, {len(unreadable)} unreadable (under {root})")
    rows = [("missing", r, "") for r in missing] + [("unreadable", r, m) for r, m in unreadable]
    show_problems(rows, ("missing", "unreadable"), args.show, args.report, ("problem", "path", "message"))
    return 1 if rows else 0


def show_problems(rows: list[tuple[str, ...]], kinds: tuple[str, ...], show: int, report: str | None,
                  columns: tuple[str, ...]) -> None:
    """Print up to ``show`` rows of each kind (tab-separated, kind first), say how many were left out, and
    write every row to the TSV file ``report`` when given."""
    for kind in kinds:
        for row in [r for r in rows if r[0] == kind][:show]:
            print("\t".join(row).rstrip("\t"))
    hidden = sum(max(0, n - show) for n in Counter(r[0] for r in rows).values())
    if hidden:
        print(f"... and {hidden} more" + ("" if report else "; pass --report FILE for the full list"))
    if report:
        atomic_write_text(report, "\t".join(columns) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
        print(f"report: {report}")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default=None, help="write every problem to this TSV file")
    parser.add_argument("--show", type=int, default=20, help="problems of each kind to print (default 20)")


def find_caches(folder: Path) -> list[tuple[str, Path]]:
    """``("aligned", dir)`` for each aligned-crop cache (a folder with a manifest) under ``folder`` (itself
    included), ``("embeddings", dir)`` for each embedding cache (``meta.json`` or ``part-*.npz``)."""
    from facematch.faces.manifest import MANIFEST

    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        if MANIFEST in filenames:
            found.append(("aligned", Path(dirpath)))
        elif "meta.json" in filenames or any(f.startswith("part-") and f.endswith(".npz") for f in filenames):
            found.append(("embeddings", Path(dirpath)))
        else:
            continue
        dirnames[:] = []  # a cache's own subfolders hold its entries
    return found


def cmd_check_cache(args: argparse.Namespace) -> int:
    from facematch.faces.cache_check import check_folder

    folder = Path(args.dir)
    if not folder.is_dir():
        raise DataNotFoundError(f"cache folder not found: {folder}")
    caches = find_caches(folder)
    if not caches:
        raise FacematchError(
            f"{folder} holds no facematch cache (no aligned-crop manifest.json, no embedding meta.json or "
            "part-*.npz); pass an aligned-crop cache folder, an embeddings folder or a cache root such as .cache/facematch"
        )
    results = []
    for kind, d in caches:
        if kind == "aligned":
            results.append(check_folder(d, args.src))
        else:
            from facematch.embedding.cache import EmbeddingCache

            from facematch.data.shards import is_packed

            results.append(EmbeddingCache(d.parent, d.name).check(args.src, stamped=lambda root: not is_packed(root)))
    rows = [(kind, r["folder"], rel, why) for r in results for kind, rel, why in r["problems"]]
    counts = Counter(kind for kind, *_ in rows)
    for r in results:
        c = Counter(kind for kind, _, _ in r["problems"])
        state = "OLD FORMAT" if c["old-format"] else f"{c['stale']} stale, {c['foreign']} foreign"
        print(f"{r['folder']}: {r['what']}: {r['entries']} entries, {state}")
    show_problems(rows, ("old-format", "foreign", "stale"), args.show, args.report, ("problem", "cache", "path", "message"))
    print(f"{len(results)} cache folder(s), {sum(r['entries'] for r in results)} entries: {counts['stale']} stale "
          f"(re-made on next use), {counts['foreign']} foreign (source gone or another source folder), "
          f"{counts['old-format']} old-format folder(s) (never read; delete them)")
    return 1 if rows else 0
