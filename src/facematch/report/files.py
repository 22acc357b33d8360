"""Rewriting results files in place (``facematch-report --republish`` / ``--stamp``): only the block named
changes, the rest of the file is written back as it was (same indent), atomically."""

from __future__ import annotations

import json
from pathlib import Path

from facematch.report.provenance import derive
from facematch.report.published import republish
from facematch.utils.io import atomic_write_text


def _style(path: Path) -> dict:
    """How a JSON file was written: its indent (2 for facematch-report, 1 for collect_curves) and whether
    it escaped non-ASCII characters."""
    text = path.read_text()
    lines = text.splitlines()
    indent = len(lines[1]) - len(lines[1].lstrip()) if len(lines) > 1 and lines[1].strip() else 2
    return {"indent": indent, "ensure_ascii": text.isascii()}


def _write(path: Path, doc: dict, style: dict) -> None:
    atomic_write_text(path, json.dumps(doc, default=float, **style) + "\n")


def republish_files(paths: list[Path], table: str | None) -> None:
    """Every row's published figures read again from published.yaml (files whose run folders are gone)."""
    for path in paths:
        style = _style(path)
        _write(path, republish(json.loads(path.read_text()), table), style)
        print(f"rewrote the published figures of {path}")


def stamp_files(paths: list[Path], command: str | None, commit: str | None, machine: str | None) -> None:
    """The provenance block added to files written before it existed (facematch.report.provenance.derive)."""
    for path in paths:
        style, doc = _style(path), json.loads(path.read_text())
        doc["provenance"] = derive(doc, path, command, commit, machine)
        _write(path, doc, style)
        print(f"{path}: provenance {doc['provenance']['command']!r} at {doc['provenance']['commit']}")
