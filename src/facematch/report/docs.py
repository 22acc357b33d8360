"""Docs tables that cannot go stale: each is rendered from a result file the repository keeps.

A table in a Markdown file sits between a marker line and a ``<!-- /table -->`` line::

    <!-- table: results/adapt.json columns="exp|10-fold acc ± std" -->
    | exp | 10-fold acc ± std |
    ...
    <!-- /table -->

The marker's words (shell quoting) name the JSON file, relative to the repository root, and how to render it:

- a ``facematch-report --json`` file (``"kind": "facematch-report"``) renders the report's own table;
  ``columns="a|b|..."`` keeps those of its columns, ``view=published`` renders its published-figures table;
- any other JSON (the benchmarks' results, a shipped calibration): ``rows=PATH`` picks a list, or a dict
  whose items become rows (``@key`` is an item's key; without ``rows`` the whole file is the one row), and
  each ``HEADER=PATH[:FORMAT]`` is one column: a dotted path into the row (``/PATH``: from the file's top)
  and a Python format spec. A report file takes such columns too (``rows=rows``). A path step
  ``[KEY=VALUE,...]`` picks the first list item whose fields have those values (``rows[exp=adapt16_head]``);
- the published figures (``src/facematch/report/published.yaml``, YAML): ``view=verbatim rows=TABLE`` renders
  that table as its document prints it; generic columns render its ``figures`` (``rows=TABLE.figures``).

A figure in prose is rendered the same way, inline: ``<!-- value: FILE PATH[:FORMAT] -->TEXT<!-- /value -->``
(the text between the two comments is the rendering of the value at ``PATH``). The docs check
(:mod:`facematch.report.trace`) accepts no other figure in prose unless it is marked as quoted.

:func:`rewrite` re-renders every block of a file (``facematch-report --docs``); :func:`stale` says which
blocks differ from their rendering (the docs test, ``facematch-report --check``). Hand-written because no
docs tool we use renders tables from JSON; the convention is a few lines of regex and ``shlex``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facematch.errors import FacematchError
from facematch.report import table

# a marker and its end each start a line, so prose may quote them inline
BLOCK = re.compile(r"^<!-- table:(?P<marker>.*?)-->\n(?P<body>.*?)^<!-- /table -->", re.DOTALL | re.MULTILINE)
VALUE = re.compile(r"(?<!`)<!-- value:(?P<marker>.*?)-->(?P<body>.*?)<!-- /value -->")  # `quoted` in prose: not one
SELECT = re.compile(r"\[(?P<where>[^\]]*)\]")
REPORT_KIND = "facematch-report"


@dataclass
class Spec:
    """One marker: the JSON file, its options (``rows``, ``columns``, ``view``) and its generic columns."""

    file: str
    options: dict[str, str] = field(default_factory=dict)
    columns: list[tuple[str, str, str]] = field(default_factory=list)  # (header, path, format spec)

    @classmethod
    def parse(cls, marker: str) -> Spec:
        try:
            words = shlex.split(marker)
        except ValueError as err:
            raise FacematchError(f"docs table marker '{marker.strip()}': {err}; fix its quoting") from None
        if not words:
            raise FacematchError("a docs table marker names no file; write <!-- table: results/NAME.json ... -->")
        spec = cls(words[0])
        for word in words[1:]:
            header, sep, value = word.partition("=")
            if not sep:
                raise FacematchError(f"docs table marker for {spec.file}: '{word}' is not HEADER=PATH[:FORMAT]")
            if header in ("rows", "columns", "view"):
                spec.options[header] = value
            else:
                path, _, fmt = value.partition(":")
                spec.columns.append((header, path, fmt))
        return spec


def _get(obj, path: str, key: str | None = None, doc=None):
    """The value at a dotted ``path`` in ``obj`` (a key may itself hold dots; ``/PATH`` starts at the file's
    top, ``doc``); ``@key`` is the row's key. Raises KeyError where the path leads nowhere."""
    if path == "@key":
        return key
    if path.startswith("/"):
        obj, path = doc, path[1:]
    if SELECT.search(path):  # rows[exp=a,margin=0.2].accuracy_mean: pick a list item by its fields
        m = SELECT.search(path)
        obj = _get(obj, m.string[:m.start()].rstrip(".")) if m.start() else obj
        where = dict(w.split("=", 1) for w in m["where"].split(",") if "=" in w)
        items = obj if isinstance(obj, list) else []
        found = [item for item in items if isinstance(item, dict)
                 and all(str(item.get(k.strip())) == v.strip() for k, v in where.items())]
        if not found:
            raise KeyError(path)
        return _get(found[0], path[m.end():].lstrip("."), key, doc)
    parts = path.split(".") if path else []
    while parts:
        for n in range(len(parts), 0, -1):  # the longest key first: "within_0.1_pt"
            name = ".".join(parts[:n])
            if isinstance(obj, dict) and name in obj:
                obj, parts = obj[name], parts[n:]
                break
            if isinstance(obj, list) and name.isdigit() and int(name) < len(obj):
                obj, parts = obj[int(name)], parts[n:]
                break
        else:
            raise KeyError(path)
    return obj


def _cell(value, fmt: str) -> str:
    """``value`` under a Python format spec; ``pct``: a fraction as a percentage with two decimals, no sign
    (a fraction of one half renders as fifty with two decimals)."""
    if value is None:
        return "—"
    if fmt == "pct":
        return f"{100 * float(value):.2f}"
    return format(value, fmt) if fmt else str(value)


def _generic(spec: Spec, doc) -> str:
    """A column missing from some rows is "—" there (a benchmark that skipped a case); missing from every
    row, it is a wrong path in the marker."""
    if not spec.columns:
        raise FacematchError(f"docs table marker for {spec.file} names no columns; add HEADER=PATH[:FORMAT] words")
    rows_at = spec.options.get("rows")
    try:
        items = _get(doc, rows_at) if rows_at else doc
    except KeyError:
        raise FacematchError(f"docs table of {spec.file}: no rows at {rows_at}; fix the marker's rows=") from None
    rows = list(items.items()) if rows_at and isinstance(items, dict) else [(None, r) for r in
                                                                            (items if rows_at else [items])]
    body, found = [], set()
    for key, row in rows:
        cells = {}
        for header, path, fmt in spec.columns:
            try:
                cells[header] = _cell(_get(row, path, key, doc), fmt)
                found.add(header)
            except KeyError:
                cells[header] = "—"
        body.append(cells)
    lost = [(h, p) for h, p, _ in spec.columns if h not in found]
    if lost:
        raise FacematchError(f"docs table of {spec.file}: no {lost[0][1]} in any row; fix the marker's column "
                             f"'{lost[0][0]}'")
    return table.grid([h for h, _, _ in spec.columns], body)


def _report(spec: Spec, doc: dict) -> str:
    rows = doc["rows"]
    if spec.options.get("view") == "published":
        return table.grid(table.published_head(rows), table.published_cells(rows))
    head = spec.options["columns"].split("|") if "columns" in spec.options else table.head(rows)
    known = table.COLUMNS + table.OPTIONAL_COLUMNS
    unknown = [h for h in head if h not in known]
    if unknown:
        raise FacematchError(f"docs table of {spec.file}: no report column {unknown[0]!r}; "
                             f"choose among {', '.join(known)}")
    return table.grid(head, table.cells(rows))


def load(path: Path):
    """A docs source: JSON, or YAML for a ``.yaml`` file (the published figures)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FacematchError(f"docs table source {path} not found; write it (facematch-report --json, or the "
                             "benchmark) or fix the marker") from None
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FacematchError(f"docs table source {path} is not JSON ({err}); write it again") from None


def _verbatim(spec: Spec, doc) -> str:
    """A published table as its document prints it: its header and cells, nothing added."""
    try:
        t = _get(doc, spec.options.get("rows", ""))
        head, rows = t["header"], t["rows"]
    except (KeyError, TypeError):
        raise FacematchError(f"docs table of {spec.file}: no published table at rows={spec.options.get('rows')}; "
                             "name one (rows=TABLE)") from None
    return table.grid([str(h) for h in head], [dict(zip(map(str, head), map(str, r))) for r in rows])


def value(marker: str, root: Path) -> str:
    """The text an inline ``<!-- value: FILE PATH[:FORMAT] -->`` marker stands for."""
    try:
        words = shlex.split(marker)
    except ValueError as err:
        raise FacematchError(f"docs value marker '{marker.strip()}': {err}; fix its quoting") from None
    if len(words) != 2:
        raise FacematchError(f"docs value marker '{marker.strip()}': write <!-- value: FILE PATH[:FORMAT] -->")
    path, _, fmt = words[1].rpartition(":") if ":" in words[1] else (words[1], "", "")
    try:
        return _cell(_get(load(root / words[0]), path), fmt)
    except KeyError:
        raise FacematchError(f"docs value marker '{marker.strip()}': no {path} in {words[0]}; fix the path") from None


def render(spec: Spec, root: Path) -> str:
    """The Markdown table a marker stands for, from its JSON file under ``root``."""
    doc = load(root / spec.file)
    if spec.options.get("view") == "verbatim":
        return _verbatim(spec, doc)
    if isinstance(doc, dict) and doc.get("kind") == REPORT_KIND and not spec.columns:
        return _report(spec, doc)
    return _generic(spec, doc)


def rewrite(text: str, root: Path) -> str:
    """``text`` with every marked block's body, and every inline value, replaced by its rendering."""
    text = BLOCK.sub(lambda m: f"<!-- table:{m['marker']}-->\n{render(Spec.parse(m['marker']), root)}\n"
                               "<!-- /table -->", text)
    return VALUE.sub(lambda m: f"<!-- value:{m['marker']}-->{value(m['marker'], root)}<!-- /value -->", text)


def stale(md_files: list[Path], root: Path) -> list[str]:
    """One line per marked block whose body is not its rendering (empty: the docs agree with the results)."""
    out = []
    for md in md_files:
        text = md.read_text()
        for m in BLOCK.finditer(text):
            if m["body"] != render(Spec.parse(m["marker"]), root) + "\n":
                line = text.count("\n", 0, m.start()) + 1
                out.append(f"{md}:{line}: the table of{m['marker'].rstrip()} differs from its rendering; "
                           "run facematch-report --docs")
        for m in VALUE.finditer(text):
            if m["body"] != value(m["marker"], root):
                line = text.count("\n", 0, m.start()) + 1
                out.append(f"{md}:{line}: the value{m['marker'].rstrip()} reads {m['body']!r}, its rendering "
                           f"{value(m['marker'], root)!r}; run facematch-report --docs")
    return out


def markdown_files(paths: list[Path]) -> list[Path]:
    """The Markdown files named, and those under each folder named."""
    files = []
    for p in paths:
        if not p.exists():
            raise FacematchError(f"no such docs file or folder: {p}")
        files += sorted(p.rglob("*.md")) if p.is_dir() else [p]
    return files


def rewrite_docs(files: list[Path], root: Path) -> list[Path]:
    """Re-render the marked tables and values of ``files`` from their results files; the files changed."""
    from facematch.utils.io import atomic_write_text

    changed = []
    for md in files:
        text = md.read_text()
        new = rewrite(text, root)
        if new != text:
            atomic_write_text(md, new)
            changed.append(md)
    return changed
