"""``facematch-data download``: fetch LFW or pretrained weights into a folder, from mirrors, resumable,
hash-checked, safely extracted.

The files, their hashes and their mirrors: :mod:`facematch.data.lfw_files` (LFW: figshare then UMass; the
deep-funneled archive at UMass only) and the backbones' declarations (:mod:`facematch.models.backbones`:
the weights files facematch publishes, read without importing torch); the fetching
(pooch, resumable transfers, mirror fallback, ``FACEMATCH_MIRROR_<NAME>``): :mod:`facematch.utils.fetch`;
safe extraction: :mod:`facematch.utils.archives`. ``--base-url URL`` replaces every mirror with one folder
holding the files under their own names.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facematch.data.lfw_files import DEFAULT_ARCHIVE, LFW_ARCHIVES, LFW_PAIRS, fetch_lfw
from facematch.errors import FacematchError
from facematch.models.backbones import published_weights
from facematch.utils.fetch import FetchError, fetch_file
from facematch.utils.io import sha256_file

#: ``facematch-data download NAME``: weights files (``arch.weights=DEST/<name>``).
WEIGHTS = published_weights()
#: sha256 of the LFW protocol files.
LFW_PAIRS_SHA256 = {name: remote.hash for name, remote in LFW_PAIRS.items()}


def cmd_download(args: argparse.Namespace) -> int:
    """``facematch-data download lfw|<weights> --dest DIR``."""
    dest = Path(args.dest).expanduser()
    t0 = time.perf_counter()
    try:
        if args.dataset in WEIGHTS:
            remote = WEIGHTS[args.dataset]
            path = fetch_file(remote, dest, not args.no_progress, args.timeout, args.base_url)
            print(f"downloaded {remote.name} into {dest} in {time.perf_counter() - t0:.1f} s")
            print(f"  use it with: arch.weights={path}")
            return 0
        files, tops = fetch_lfw(dest, args.archive, not args.no_progress, args.timeout, args.base_url, args.sha256,
                                extract=not args.no_extract)
    except FetchError as err:
        fix = "check --base-url" if args.base_url else "check the network, or set FACEMATCH_MIRROR_<NAME> to a mirror"
        raise FacematchError(f"{err}; {fix} (an interrupted download resumes when run again)") from None
    print(f"downloaded LFW into {dest} in {time.perf_counter() - t0:.1f} s")
    for name, path in files.items():
        print(f"  {name}  sha256 {sha256_file(path)}")
    for t in tops:
        print(f"  images: {dest / t}")
    return 0


__all__ = ["DEFAULT_ARCHIVE", "LFW_ARCHIVES", "WEIGHTS", "cmd_download"]
