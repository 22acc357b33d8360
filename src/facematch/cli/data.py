"""``facematch-data``: get a dataset (download), align it into a cache (prepare), check it (verify), check
caches against their source files (check-cache).

    facematch-data download lfw --dest DIR [--base-url URL] [--archive lfw.tgz] [--sha256 HEX]
    facematch-data download mobilefacenet --dest DIR [--base-url URL]
    facematch-data prepare SRC [OUT] --template arcface_112x112 [--pairs FILE] [--workers N] [--cache-dir DIR]
    facematch-data verify ROOT --pairs FILE [--report FILE]
    facematch-data pack SRC OUT [--prealigned TEMPLATE] [--pairs FILE] [--part-size N] [--force]
    facematch-data verify OUT                      # a packed set: every shard's sha256, every item decoded
    facematch-data verify lfw.bin                  # an insightface .bin: read without running it, every image decoded
    facematch-data check-cache DIR [--src ROOT] [--report FILE]

``download``: :mod:`facematch.cli.download`; ``verify`` and ``check-cache``: :mod:`facematch.cli.checks`.

``pack``: :mod:`facematch.data.pack` (format and integrity checks: :mod:`facematch.data.shards`); train from
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
import sys
from pathlib import Path

from facematch.cli.checks import add_report_arguments, cmd_check_cache, cmd_verify, pair_images
from facematch.cli.download import DEFAULT_ARCHIVE, LFW_ARCHIVES, WEIGHTS, cmd_download
from facematch.errors import cli_errors
from facematch.utils.allocator import tune as tune_allocator


# ---------------------------------------------------------------------------------------------------
# prepare


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
        "  facematch-data download mobilefacenet --dest weights\n"
        "  facematch-data prepare data/lfw/lfw-deepfunneled --template sphereface_112x96 "
        "--pairs data/lfw/pairs.txt\n"
        "  facematch-data prepare data/lfw/lfw-deepfunneled data/lfw-aligned --template arcface_112x112\n"
        "  facematch-data pack data/lfw-aligned-112 data/lfw-aligned-112.packed --prealigned arcface_112x112\n"
        "  facematch-data verify data/lfw/lfw-deepfunneled --pairs data/lfw/pairs.txt\n"
        "  facematch-data check-cache .cache/facematch",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{download,prepare,pack,pack-bin,verify,check-cache}")

    d = sub.add_parser("download", help="fetch LFW and its pairs files, or pretrained weights (resumable, sha256-checked)",
                       description="Fetch the LFW archive and pairs files from mirrors (check each "
                       "against its published hash, resume an interrupted transfer, extract safely), or a "
                       "pretrained weights file (check its published sha256).")
    d.add_argument("dataset", choices=["lfw", *WEIGHTS], help="what to fetch: lfw, or weights for arch.weights")
    d.add_argument("--dest", required=True, help="folder to download (and extract) into")
    d.add_argument("--base-url", default=None,
                   help="one folder holding the files under their own names, in place of the mirrors (LFW: figshare, "
                   "then the LFW site; FACEMATCH_MIRROR_FIGSHARE / _UMASS / _GITHUB replace one)")
    d.add_argument("--archive", default=DEFAULT_ARCHIVE, choices=list(LFW_ARCHIVES),
                   help="image archive: deep-funneled (default, the LFW site only), the original lfw.tgz or "
                   "lfw-funneled.tgz (figshare and the LFW site)")
    d.add_argument("--sha256", default=None, help="expected hash of the archive, in place of the published one")
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

    v = sub.add_parser("verify", help="report missing and unreadable images of a pairs file, or check a packed set "
                       "or an insightface .bin",
                       description="Check every image a pairs file uses exists under ROOT and decodes; for a "
                       "packed set (facematch-data pack), check every shard's sha256 and decode every item "
                       "(--pairs optional: also report its images missing from the set); for an insightface "
                       ".bin, read it without running anything and decode every image. Exit status 1 if any "
                       "image is missing or unreadable; a damaged shard or a refused .bin is one error line naming it.")
    v.add_argument("root", help="dataset folder the pairs file's paths are relative to, a packed folder, or a .bin file")
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
    tune_allocator()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
