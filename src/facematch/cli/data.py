"""``facematch-data``: get a dataset (download), align it into a cache (prepare), check it (verify), check
caches against their source files (check-cache).

    facematch-data download lfw --dest DIR [--base-url URL] [--archive lfw.tgz] [--sha256 HEX]
    facematch-data prepare SRC [OUT] --template arcface_112x112 [--pairs FILE] [--workers N] [--cache-dir DIR]
    facematch-data verify ROOT --pairs FILE [--report FILE]
    facematch-data pack SRC OUT [--prealigned TEMPLATE] [--pairs FILE] [--part-size N] [--force]
    facematch-data verify OUT                      # a packed set: every shard's sha256, every item decoded
    facematch-data check-cache DIR [--src ROOT] [--report FILE]

``download``: :mod:`facematch.cli.download`.

``pack``: :mod:`facematch.data.pack` (format and integrity checks: :mod:`facematch.faces.packed`); train from
the result with ``data=packed data.root=OUT``.

``prepare`` aligns with the settings of ``conf/align/mtcnn.yaml`` by default (the face nearest the centre), into
the keyed folder ``<--cache-dir>/<template>-<digest>`` (default ``$FACEMATCH_CACHE_DIR/aligned``, the
``align.cache_dir`` training and ``facematch-eval`` read): one folder per template, detector settings and
source folder, so other settings never clash. An explicit ``OUT`` is used as named and holds one setting:
other settings or another source folder are refused with a one-line error naming the fix.

``check-cache`` takes an aligned-crop cache folder, an embeddings folder, or a cache root holding both
(``.cache/facematch``), changes nothing, and reports every entry whose source file changed since it was
made (``stale``: re-made on next use), whose source file is gone or, with ``--src``, that was made from
another folder (``foreign``), and every cache folder in an older format (``old-format``: never read,
delete it); exit status 1 if there is any.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from collections import Counter

from facematch.errors import DataNotFoundError, FacematchError, cli_errors
from facematch.utils.io import atomic_write_text

from facematch.cli.download import LFW_ARCHIVES, LFW_BASE_URL, cmd_download


# ---------------------------------------------------------------------------------------------------
# prepare


def pair_images(pairs_file: str | os.PathLike) -> list[str]:
    """Every distinct image a pairs file (LFW pairs.txt / View 1, or a ``pathA pathB label`` list) uses."""
    from facematch.data.pair_files import read_pairs

    return sorted({p for pair in read_pairs(pairs_file) for p in (pair.a, pair.b)})


def prepare_settings(args: argparse.Namespace) -> dict:
    """The aligner settings ``prepare``'s options name (defaults: ``DetectorSettings``, = ``conf/align/mtcnn.yaml``)."""
    kwargs = dict(select=args.select, min_face_size=args.min_face_size, thresholds=tuple(args.thresholds),
                  factor=args.factor, landmark_offset=args.landmark_offset)
    if args.margin is not None:
        kwargs["margin"] = args.margin
    return kwargs


def prepare_folder(args: argparse.Namespace) -> Path:
    """``OUT`` when given, else the keyed folder under ``--cache-dir`` that training and facematch-eval read."""
    from facematch.faces.crop_cache import AlignedCache

    if args.out:
        return Path(args.out)
    return AlignedCache.under(args.cache_dir, args.template, args.src, **prepare_settings(args)).root


def cmd_prepare(args: argparse.Namespace) -> int:
    from facematch.faces.prepare import prepare

    rels = pair_images(args.pairs) if args.pairs else None
    out = prepare_folder(args)
    m = prepare(
        args.src, out, args.template, rels, workers=args.workers, progress=not args.no_progress,
        force=args.force, **prepare_settings(args),
    )
    c = m["counts"]
    rate = f", {m['images_per_s']} img/s" if m.get("images_per_s") else ""
    print(
        f"{c['cached']} of {c['requested']} images aligned to {m['template']} in {out} "
        f"({c['made_this_run']} now, {c['already_done']} already done; {c['fallback']} centre-crop fallbacks, "
        f"{c['multiple_faces']} with several faces, {c['failed']} failed) in {m['elapsed_s']} s "
        f"with {m['workers']} worker(s){rate}"
    )
    if c["stale_remade"]:
        print(f"{c['stale_remade']} crops were made again: their source file changed since they were made")
    if c["failed"]:
        print(f"failures by reason {c['failed_by_reason']}: see {out / m['failures_file']}")
    print(f"manifest: {out / 'manifest.json'}")
    return 0


# ---------------------------------------------------------------------------------------------------
# verify


def cmd_pack(args: argparse.Namespace) -> int:
    from facematch.data.pack import pack

    index = pack(args.src, args.out, pairs=args.pairs, prealigned=args.prealigned, part_size=args.part_size,
                 chunk_bytes=args.chunk_bytes, force=args.force, progress=not args.no_progress)
    st, pp = index["stats"], index["preprocess"]
    size = sum(r["bytes"] for p in index["parts"] for r in p["files"].values())
    dropped = sum(len(v) for v in index["dropped"].values())
    print(f"{index['count']} images of {len(index['identities'])} identities packed into {args.out} "
          f"({len(index['parts'])} parts, {size / 1e6:.1f} MB; {st['parts_written']} written now, "
          f"{st['parts_reused']} already done) in {st['seconds']} s; preprocess: {pp['mode']}"
          + (f" {pp['template']}" if pp.get("template") else "")
          + (f"; {dropped} unusable image(s) left out {{{', '.join(f'{k}: {len(v)}' for k, v in index['dropped'].items())}}}"
             if dropped else ""))
    print(f"train from it: facematch-train data=packed data.root={args.out}")
    return 0


def cmd_verify_packed(args: argparse.Namespace) -> int:
    from facematch.faces.packed import PackedSet

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


def cmd_verify(args: argparse.Namespace) -> int:
    from facematch.faces.images import load_image
    from facematch.faces.packed import is_packed

    if is_packed(args.root):
        return cmd_verify_packed(args)
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


# ---------------------------------------------------------------------------------------------------
# check-cache


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

            results.append(EmbeddingCache(d.parent, d.name).check(args.src))
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


# ---------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from facematch.faces.detect import SELECTION_RULES, DetectorSettings
    from facematch.faces.templates import TEMPLATES
    from facematch.paths import cache_dir

    det = DetectorSettings()  # the defaults of conf/align/mtcnn.yaml

    p = argparse.ArgumentParser(
        prog="facematch-data",
        description="Download, align (prepare) and verify face datasets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  facematch-data download lfw --dest data/lfw\n"
        "  facematch-data prepare data/lfw/lfw-deepfunneled --template sphereface_112x96 "
        "--pairs data/lfw/pairs.txt\n"
        "  facematch-data prepare data/lfw/lfw-deepfunneled data/lfw-aligned --template arcface_112x112\n"
        "  facematch-data pack data/lfw-aligned-112 data/lfw-aligned-112.packed --prealigned arcface_112x112\n"
        "  facematch-data verify data/lfw/lfw-deepfunneled --pairs data/lfw/pairs.txt\n"
        "  facematch-data check-cache .cache/facematch",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{download,prepare,pack,pack-bin,verify,check-cache}")

    d = sub.add_parser("download", help="fetch LFW and its pairs files (resumable, sha256-checked)",
                       description="Fetch the LFW archive and pairs files, check sha256, extract safely.")
    d.add_argument("dataset", choices=["lfw"], help="dataset to fetch")
    d.add_argument("--dest", required=True, help="folder to download and extract into")
    d.add_argument("--base-url", default=LFW_BASE_URL, help=f"where the files live (default {LFW_BASE_URL})")
    d.add_argument("--archive", default=LFW_ARCHIVES[0], choices=LFW_ARCHIVES,
                   help="image archive: deep-funneled (default) or the original lfw.tgz")
    d.add_argument("--sha256", default=None, help="expected sha256 of the archive (its sum is printed anyway)")
    d.add_argument("--no-extract", action="store_true", help="download only")
    d.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_download)

    r = sub.add_parser("prepare", help="detect, align and cache every face of a dataset",
                       description="Align SRC/<identity>/<file> into <identity>/<file>.png of the keyed cache folder "
                       "DIR/<template>-<digest> (--cache-dir; one folder per template, detector settings and source "
                       "folder: the folder training and facematch-eval read with the same settings), or into OUT as "
                       "named (an OUT made with other settings or from another SRC is refused). Resumable; writes "
                       "manifest.json and failures.tsv. Defaults are those of conf/align/mtcnn.yaml.")
    r.add_argument("src", help="dataset folder holding <identity>/<file>")
    r.add_argument("out", nargs="?", default=None,
                   help="cache folder to create or complete, used as named (default: the keyed folder under --cache-dir)")
    r.add_argument("--cache-dir", default=str(cache_dir() / "aligned"),
                   help="where keyed cache folders live (default $FACEMATCH_CACHE_DIR/aligned = align.cache_dir: "
                   f"{cache_dir() / 'aligned'})")
    r.add_argument("--template", default="arcface_112x112", choices=sorted(TEMPLATES),
                   help="alignment template, the backbone's (resnet50: arcface_112x112, the default; mobilefacenet: "
                   "sphereface_112x96; inception_resnet_v1: facenet_160)")
    r.add_argument("--pairs", default=None, help="only the images this pairs file uses (LFW pairs.txt or a list)")
    r.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    r.add_argument("--select", default=det.select, choices=SELECTION_RULES,
                   help=f"which face when there are several: nearest the centre or the largest box (default {det.select})")
    r.add_argument("--min-face-size", type=int, default=det.min_face_size,
                   help=f"smallest face searched, pixels (default {det.min_face_size})")
    r.add_argument("--thresholds", type=float, nargs=3, default=det.thresholds, metavar=("P", "R", "O"),
                   help="MTCNN stage thresholds (default {} {} {})".format(*det.thresholds))
    r.add_argument("--factor", type=float, default=det.factor, help=f"image pyramid scale step (default {det.factor})")
    r.add_argument("--landmark-offset", type=float, default=det.landmark_offset,
                   help=f"pixels added to MTCNN's landmarks (default {det.landmark_offset})")
    r.add_argument("--margin", type=int, default=None, help="box templates only: margin in output pixels")
    r.add_argument("--force", action="store_true", help="redo images already in the cache")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_prepare)

    from facematch.data.pack import CHUNK_BYTES, PART_SIZE

    k = sub.add_parser("pack", help="pack an identity-folder dataset into litdata shards (data=packed)",
                       description="Pack SRC/<identity>/<file> (or an aligned-crop cache made by prepare) into "
                       "litdata shards with an identity index in OUT, the original bytes of each file; resumable "
                       "(finished parts are kept). Train from it with data=packed data.root=OUT.")
    k.add_argument("src", help="dataset folder holding <identity>/<file>, or an aligned-crop cache folder")
    k.add_argument("out", help="folder to create or complete (then copy it to an object store if you like)")
    k.add_argument("--prealigned", default=None, choices=sorted(TEMPLATES), metavar="TEMPLATE",
                   help="SRC holds crops already aligned to TEMPLATE (lfw-aligned-112: arcface_112x112); recorded "
                   "as the preprocessing data=packed uses (default: raw photos, centre crop; a prepare cache "
                   "records its own template)")
    k.add_argument("--pairs", default=None, help="only the images this pairs file uses (LFW pairs.txt or a list)")
    k.add_argument("--part-size", type=int, default=PART_SIZE,
                   help=f"images per part, the unit a resumed pack redoes (default {PART_SIZE})")
    k.add_argument("--chunk-bytes", default=CHUNK_BYTES, help=f"litdata chunk size (default {CHUNK_BYTES})")
    k.add_argument("--force", action="store_true", help="replace a pack of other settings in OUT")
    k.add_argument("--no-progress", action="store_true", help="no progress bar")
    k.set_defaults(func=cmd_pack)

    v = sub.add_parser("verify", help="report missing and unreadable images of a pairs file, or check a packed set",
                       description="Check every image a pairs file uses exists under ROOT and decodes; for a "
                       "packed set (facematch-data pack), check every shard's sha256 and decode every item "
                       "(--pairs optional: also report its images missing from the set). Exit status 1 if any "
                       "image is missing or unreadable; a damaged shard is one error line naming it.")
    v.add_argument("root", help="dataset folder the pairs file's paths are relative to, or a packed folder")
    v.add_argument("--pairs", default=None, help="LFW pairs.txt / View 1 file, or a 'pathA pathB label' list")
    add_report_arguments(v)
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_verify)

    k = sub.add_parser("check-cache", help="report stale, foreign and old-format entries of caches",
                       description="Check every aligned crop and embedding under DIR against the source file it "
                       "was made from (nothing is changed); exit status 1 if any entry is stale or foreign, or "
                       "any cache folder is in an older format.")
    k.add_argument("dir", help="an aligned-crop cache folder, an embeddings folder, or a cache root holding both")
    k.add_argument("--src", default=None,
                   help="the dataset folder the caches should be of: entries made from another folder are foreign")
    add_report_arguments(k)
    k.set_defaults(func=cmd_check_cache)

    from facematch.cli.pack_bin import add_pack_bin_parser

    add_pack_bin_parser(sub)
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
