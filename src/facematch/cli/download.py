"""``facematch-data download``: fetch LFW or pretrained weights into a folder, resumable, checked, safely extracted.

Fetches with urllib into ``<file>.part`` and resumes an interrupted transfer with an HTTP ``Range``
request (starting over when the server ignores it); the finished file is renamed into place only after
its sha256 is checked: the pairs files against their published sums, the archive against ``--sha256``
when given (its computed sum is always printed). Archives are extracted only when every member stays
inside DEST: absolute names, ``..``, links pointing outside DEST and device files are refused, and
extraction also uses tarfile's ``data`` filter.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facematch.errors import FacematchError
from facematch.utils.io import atomic_write_text, sha256_file

LFW_BASE_URL = "http://vis-www.cs.umass.edu/lfw/"
LFW_ARCHIVES = ("lfw-deepfunneled.tgz", "lfw.tgz")
#: Published sha256 of the LFW protocol files (see the data README).
LFW_PAIRS_SHA256 = {
    "pairs.txt": "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
    "pairsDevTrain.txt": "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
    "pairsDevTest.txt": "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
}
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsFile:
    """A published checkpoint: where it lives (``base_url`` + ``remote``), the name it gets, its sha256."""

    base_url: str
    remote: str
    name: str
    sha256: str
    source: str


#: ``facematch-data download NAME``: weights files (``arch.weights=DEST/<name>``).
WEIGHTS = {
    "mobilefacenet": WeightsFile(
        # model/best/068.ckpt of the public repository, at the commit that added it
        base_url="https://raw.githubusercontent.com/Xiaoccer/MobileFaceNet_Pytorch/"
                 "9c6e162647edf1bdc1d194f305d2030c79bf4613/model/best/",
        remote="068.ckpt",
        name="mobilefacenet_casia_068.ckpt",
        sha256="e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99",
        source="github.com/Xiaoccer/MobileFaceNet_Pytorch, model/best/068.ckpt (CASIA-WebFace, epoch 68)",
    ),
}


# ---------------------------------------------------------------------------------------------------
# download


def fetch(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), check ``sha256``, rename; returns the sum."""
    if dest.is_file():
        got = sha256_file(dest)
        if sha256 is None or got == sha256:
            print(f"{dest.name}: already present (sha256 {got})", file=sys.stderr)
            return got
        raise FacematchError(
            f"{dest} exists but its sha256 is {got}, not {sha256}; delete it and run download again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "facematch-data"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the .part file is already complete
            resp = None
        else:
            raise FacematchError(f"download of {url} failed: HTTP {err.code} {err.reason}; check --base-url") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FacematchError(
            f"cannot reach {url} ({reason}); check the network or pass --base-url to a mirror"
        ) from None
    if resp is not None:
        with resp:
            resumed = bool(start) and resp.status == 206
            if resumed and not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                part.unlink()
                raise FacematchError(
                    f"{url} answered the resume request with another range "
                    f"({resp.headers.get('Content-Range')}); the partial file was removed, run again"
                )
            if start and not resumed:
                print(f"{dest.name}: server ignored the resume request; starting over", file=sys.stderr)
                start = 0
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            bar = _bar(total, start, dest.name) if progress else None
            try:
                with open(part, "ab" if resumed else "wb") as fh:
                    while block := resp.read(CHUNK):
                        fh.write(block)
                        if bar is not None:
                            bar.update(len(block))
                    fh.flush()
                    os.fsync(fh.fileno())
            except (OSError, urllib.error.URLError) as err:
                raise FacematchError(
                    f"download of {url} was interrupted ({err}); run the same command again to resume"
                ) from None
            finally:
                if bar is not None:
                    bar.close()
        if total is not None and part.stat().st_size != total:
            raise FacematchError(
                f"download of {url} stopped at {part.stat().st_size} of {total} bytes; "
                "run the same command again to resume"
            )
    got = sha256_file(part)
    if sha256 is not None and got != sha256:
        part.unlink()
        raise FacematchError(
            f"sha256 of {url} is {got}, expected {sha256}; the download was removed, "
            "run again (or check --sha256 / --base-url)"
        )
    os.replace(part, dest)
    print(f"{dest.name}: sha256 {got}", file=sys.stderr)
    return got


def _bar(total, initial, name):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, file=sys.stderr)


def _unsafe_reason(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why ``member`` would land outside ``dest`` (resolved), or ``None`` if it is safe."""
    name = member.name
    p = PurePosixPath(name)
    if name.startswith(("/", "\\")) or p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in p.parts:
        return "'..' in its path"
    target = (dest / p).resolve()
    if target != dest and dest not in target.parents:
        return "resolves outside the destination"
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or member.linkname.startswith(("/", "\\")):
            return f"link to absolute path '{member.linkname}'"
        base = dest / p.parent if member.issym() else dest
        resolved = (base / link).resolve()
        if resolved != dest and dest not in resolved.parents:
            return f"link to '{member.linkname}' outside the destination"
    if member.isdev() or member.isfifo():
        return "device or fifo"
    return None


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract ``archive`` into ``dest`` if every member is safe; returns the top-level names extracted.

    Members are checked before anything is written; extraction goes to a hidden folder in ``dest`` and
    each top-level entry is then renamed into place, so an interrupted extraction leaves nothing
    half-done under a real name. A marker file records a finished extraction so re-runs skip it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dest_r = dest.resolve()
    marker = dest / f".{archive.name}.extracted"
    digest = sha256_file(archive)
    if marker.is_file() and marker.read_text().split("\n")[0] == digest:
        print(f"{archive.name}: already extracted", file=sys.stderr)
        return marker.read_text().split("\n")[1:-1]
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise FacematchError(f"{archive} is not a readable tar archive ({err}); delete it and download again") from None
    with tar:
        members = tar.getmembers()
        for m in members:
            why = _unsafe_reason(m, dest_r)
            if why:
                raise FacematchError(
                    f"archive {archive} has an unsafe member '{m.name}' ({why}); refusing to extract it"
                )
        tops = sorted({PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts})
        clash = [t for t in tops if (dest / t).exists()]
        if clash:
            raise FacematchError(
                f"{dest / clash[0]} already exists and was not extracted from {archive.name}; "
                "delete it or choose another --dest"
            )
        tmp = dest / f".{archive.name}.extracting"
        if tmp.exists():
            shutil.rmtree(tmp)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tar.extractall(tmp, members=members, **kwargs)
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FacematchError(f"extracting {archive} failed ({err}); delete it and download again") from None
    for t in tops:
        os.replace(tmp / t, dest / t)
    shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(marker, digest + "\n" + "".join(t + "\n" for t in tops))
    return tops


def _base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def cmd_download(args: argparse.Namespace) -> int:
    """``facematch-data download lfw|<weights> --dest DIR``."""
    if args.dataset in WEIGHTS:
        return download_weights(WEIGHTS[args.dataset], Path(args.dest).expanduser(), args)
    dest = Path(args.dest).expanduser()
    base = _base(args.base_url or LFW_BASE_URL)
    progress = not args.no_progress
    t0 = time.perf_counter()
    archive = dest / args.archive
    sums = {args.archive: fetch(base + args.archive, archive, args.sha256, args.timeout, progress)}
    for name, expected in LFW_PAIRS_SHA256.items():
        sums[name] = fetch(base + name, dest / name, expected, args.timeout, progress)
    tops = [] if args.no_extract else safe_extract(archive, dest)
    print(f"downloaded LFW into {dest} in {time.perf_counter() - t0:.1f} s")
    for name, digest in sums.items():
        print(f"  {name}  sha256 {digest}")
    for t in tops:
        print(f"  images: {dest / t}")
    return 0


def download_weights(weights: WeightsFile, dest: Path, args: argparse.Namespace) -> int:
    """Fetch one weights file into ``dest`` (resumable, sha256-checked) and say how to use it."""
    t0 = time.perf_counter()
    path = dest / weights.name
    fetch(_base(args.base_url or weights.base_url) + weights.remote, path, weights.sha256, args.timeout,
          not args.no_progress)
    print(f"downloaded {weights.name} into {dest} in {time.perf_counter() - t0:.1f} s (from {weights.source})")
    print(f"  use it with: arch.weights={path}")
    return 0
