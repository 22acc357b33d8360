"""Where a results file came from: the command that wrote it, the commit it ran at, the machine it ran on.

``facematch-report --json`` / ``--benchmark --json`` write the block (:func:`stamp`) into every results file
they make; ``facematch-report --stamp`` adds it to a file made before the block existed, from what its
history records (the values are named on the command line: its run folders are gone). The docs check
(facematch.report.trace) accepts a rendered figure only from a file whose block names all three.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

FIELDS = ("command", "commit", "machine")


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit(cwd: Path = Path(".")) -> str:
    """The checkout's commit (short hash), ``+changes`` where tracked files differ from it; ``unknown``
    outside a git checkout (an installed package)."""
    head = _git("rev-parse", "--short", "HEAD", cwd=cwd)
    if not head:
        return "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return head + ("+changes" if dirty else "")


def stamp(command: str, cwd: Path = Path(".")) -> dict:
    """The provenance block of a results file written now by ``command``."""
    from facematch.utils.hardware import machine_info

    return {"command": command, "commit": commit(cwd), "machine": machine_info()}


def missing(doc) -> list[str]:
    """The provenance fields a results file lacks (empty: it names its command, commit and machine)."""
    block = doc.get("provenance") if isinstance(doc, dict) else None
    if not isinstance(block, dict):
        return list(FIELDS)
    return [f for f in FIELDS if not block.get(f)]


def derive(doc: dict, path: Path, command: str | None = None, commit_: str | None = None,
           machine: str | None = None) -> dict:
    """The provenance block of a results file written before the block existed, from what the file itself
    records (its ``command``, ``source``, ``machine``, its rows' machine) and, for the commit, its git history
    (the last commit that wrote it); ``command`` / ``commit_`` / ``machine`` override. Raises naming the
    field where neither the file nor an override has it."""
    from facematch.errors import FacematchError

    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    rows = doc.get("rows") if isinstance(doc.get("rows"), list) else []
    row_machine = next((r["machine"] for r in rows if isinstance(r, dict) and r.get("machine")), None)
    block = {
        "command": command or doc.get("command") or source.get("command"),
        "commit": commit_ or source.get("commit") or _git("log", "-1", "--format=%h", "--", path.name, cwd=path.parent),
        "machine": machine or doc.get("machine") or source.get("machine") or row_machine,
    }
    lacking = [k for k in FIELDS if not block[k]]
    if lacking:
        raise FacematchError(f"{path} records no {', '.join(lacking)}; pass --{lacking[0]} (what its history says)")
    block["stamped"] = ("added by facematch-report --stamp from the file's own fields and its git history; its "
                        "run folders are gone")
    return block
