"""The published figures (``published.yaml`` beside this module): the one place they live, and how a row finds
its own.

An experiment config names a table (``published: {table: facenet_implementation}``, keyed by the run's
``margin``; ``published: {table: face_matching, row: exp1}``, keyed by row). :func:`for_key` gives a row's
figures as ``{"table", "source", "arch", "key", "figures": {id: {text, value, unit, facematch}}}``: what
``facematch-report`` and ``scripts/collect_curves.py`` store in a row, and what the comparison tables render.
An empty ``figures`` means the table publishes nothing for that key (margin 0.7 of the FaceNet table).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from facematch.errors import FacematchError

FILE = Path(__file__).with_name("published.yaml")
UNITS = ("percent", "fraction", "loss")


@lru_cache(maxsize=1)
def tables() -> dict:
    """Every published table, by name, as the file has it."""
    return yaml.safe_load(FILE.read_text())


def table(name: str) -> dict:
    known = tables()
    if name not in known:
        raise FacematchError(f"no published table {name!r} in {FILE.name}; name one of {', '.join(known)} "
                             "(published.table in the experiment config)")
    return known[name]


def _same_key(a, b) -> bool:
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        try:
            return abs(float(a) - float(b)) < 1e-9
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


def for_key(name: str, key) -> dict:
    """Table ``name``'s figures for ``key`` (a margin, or a row key), with the table's source and arch."""
    t = table(name)
    figures = {f["id"]: {k: f.get(k) for k in ("text", "value", "unit", "facematch")}
               for f in t["figures"] if key is not None and _same_key(f["key"], key)}
    return {"table": name, "source": f"{t['title']} ({t['document']})", "arch": t["arch"], "key": key,
            "figures": figures}


def for_config(cfg: dict) -> dict | None:
    """The published figures a run's config points at (``published.table``, with ``published.row`` or the
    run's ``margin`` as the key), or None where the config names no table."""
    ref = cfg.get("published")
    if not ref:
        return None
    if not isinstance(ref, dict) or "table" not in ref or set(ref) - {"table", "row"}:
        raise FacematchError("published in a run's config must be {table: NAME} or {table: NAME, row: KEY} "
                             f"naming a table of {FILE.name}; the figures themselves live there, not in "
                             "conf/experiment/<row>.yaml")
    t = table(ref["table"])
    key = ref.get("row") if t["keyed_by"] == "row" else cfg.get("margin")
    return for_key(ref["table"], key)


def _margin(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def ours_beside(figure: dict, ours) -> str:
    """``ours / published`` for one figure: ours as the figure's unit shows it ("—" where the row lacks it,
    "none" where nothing of ours is the same quantity), the published number as printed."""
    unit = figure["unit"]
    if figure.get("facematch") is None:
        mine = "none"
    elif ours is None:
        mine = "—"
    elif unit == "percent":
        mine = f"{100 * float(ours):.2f}"
    else:
        mine = f"{float(ours):.4f}"
    return f"{mine} / {figure['text']}"


def republish(doc: dict, table_name: str | None = None) -> dict:
    """A results file (``facematch-report --json`` rows, or ``scripts/collect_curves.py``'s ``final`` rows)
    with every row's published figures read again from the file, keyed by the row's margin or stored key:
    the one way a results file whose run folders are gone gets its published fields rewritten
    (``facematch-report --republish``). ``table_name`` names the table for rows written before a row named
    its table (their ``published`` block, or ``published_*`` fields, carried the figures themselves)."""
    rows = doc.get("rows") if doc.get("kind") == "facematch-report" else doc.get("final")
    if rows is None:
        raise FacematchError("--republish reads facematch-report --json files (rows) and scripts/collect_curves.py "
                             "files (final); this file has neither")
    for row in rows:
        old = row.get("published")
        legacy = [k for k in row if k.startswith("published_")]
        if not old and not legacy:
            continue
        name = (old or {}).get("table") or table_name
        if name is None:
            raise FacematchError("a row's published figures name no table (written before the table was named); "
                                 "pass --table NAME")
        t = table(name)
        key = (old or {}).get("key") if t["keyed_by"] == "row" else row.get("margin")
        for k in legacy:
            del row[k]
        row["published"] = for_key(name, _margin(key) if t["keyed_by"] == "margin" else key)
    doc.pop("published_source", None)
    if doc.get("kind") != "facematch-report":
        doc["published_table"] = table_name or doc.get("published_table")
    return doc
