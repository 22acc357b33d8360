"""``facematch-data pack-bin ROOT PAIRS OUT.bin``: an insightface validation file from a pairs file and an
image folder (:mod:`facematch.data.bin_writer`), so a set can be exchanged in the format the field uses and
scored with ``facematch-eval data=bin data.path=OUT.bin``.

    facematch-data pack-bin data/lfw-aligned-112 data/lfw/pairs.txt lfw.bin --prealigned arcface_112x112
    facematch-data pack-bin data/lfw/lfw-deepfunneled data/lfw/pairs.txt lfw.bin   # raw photos: aligned first
"""

from __future__ import annotations

import argparse


def cmd_pack_bin(args: argparse.Namespace) -> int:
    from facematch.data.bin_writer import write_bin
    from facematch.data.identities import missing_root_error
    from facematch.data.pair_files import read_pairs
    from facematch.data.bin_set import BIN_TEMPLATE
    from facematch.data.source import source_from_config

    from pathlib import Path

    if not Path(args.root).is_dir():
        raise missing_root_error(Path(args.root))
    pairs = read_pairs(args.pairs)
    preprocess = ({"mode": "prealigned", "template": args.prealigned} if args.prealigned
                  else {"mode": "center", "align": {"cache_dir": args.cache_dir}})
    source = source_from_config(args.root, BIN_TEMPLATE, preprocess, align_raw=True)
    r = write_bin(pairs, source, args.out, image_format=args.image_format, quality=args.quality,
                  progress=not args.no_progress)
    how = f"{r['copied']} stored as their files" if r["copied"] else f"{r['encoded']} encoded as {args.image_format}"
    print(f"{r['pairs']} pairs ({r['images']} images, {r['distinct']} distinct: {how}) written to {args.out} "
          f"({r['bytes'] / 1e6:.1f} MB); score it with facematch-eval data=bin data.path={args.out}")
    return 0


def add_pack_bin_parser(sub) -> None:
    """The ``pack-bin`` subcommand of ``facematch-data``."""
    from facematch.data.bin_writer import IMAGE_FORMATS
    from facematch.faces.templates import TEMPLATES
    from facematch.paths import cache_dir

    b = sub.add_parser("pack-bin", help="write an insightface validation file (.bin) from a pairs file",
                       description="Write OUT.bin, the pickle of (bins, issame_list) insightface's arcface_torch "
                       "validates on: the pairs of PAIRS in order, each image as a 112x112 crop aligned to "
                       "arcface_112x112. Raw photos are detected and aligned first (through the aligned-crop "
                       "cache); crops already aligned to arcface_112x112 are stored as their own bytes.")
    b.add_argument("root", help="image folder the pairs file's paths are relative to")
    b.add_argument("pairs", help="LFW pairs.txt / View 1 file, or a 'pathA pathB label' list")
    b.add_argument("out", help="the .bin file to write")
    b.add_argument("--prealigned", default=None, choices=sorted(TEMPLATES), metavar="TEMPLATE",
                   help="ROOT holds crops already aligned to TEMPLATE (lfw-aligned-112: arcface_112x112); "
                   "default: raw photos, detected and aligned")
    b.add_argument("--cache-dir", default=str(cache_dir() / "aligned"),
                   help="raw photos: where aligned crops are cached (default $FACEMATCH_CACHE_DIR/aligned)")
    b.add_argument("--image-format", default="jpeg", choices=IMAGE_FORMATS,
                   help="how crops that are not stored as their files are encoded (default jpeg)")
    b.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_pack_bin)
