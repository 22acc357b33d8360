"""Extracting a downloaded archive safely: every member must stay inside the destination (absolute names,
``..``, links pointing outside and device files are refused, and tarfile's ``data`` filter is used too);
extraction goes to a hidden folder first, so an interrupted one leaves nothing half-done under a real name."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from pathlib import Path, PurePosixPath

from facematch.errors import FacematchError
from facematch.utils.io import atomic_write_text, sha256_file


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
