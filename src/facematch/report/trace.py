"""Every figure in the docs traceable: rendered from a results file that names its command, commit and machine,
or marked as quoted from elsewhere with its source.

What counts as a figure (:data:`FIGURE`): a number with a unit of measure (a percentage, seconds,
minutes, hours, images per second, megabytes, points) or a number with two or more decimals. Settings are
not figures: write them as code (a value in backticks).

A figure passes where it is
- inside a rendered table (``<!-- table: FILE ... -->`` ... ``<!-- /table -->``) or an inline value
  (``<!-- value: FILE PATH[:FORMAT] -->TEXT<!-- /value -->``), whose FILE names its provenance
  (facematch.report.provenance: command, commit, machine) or is the published figures' file (each of its
  tables names the document it is transcribed from);
- in a paragraph (or list item) marked quoted: ``<!-- quoted: SOURCE -->`` covers the figures from the marker
  to the next blank line, e.g. ``<!-- quoted: seeds/003 -->`` or ``<!-- quoted: the checkpoint's model card -->``;
- in code: a fenced block or an inline code span (commands, settings, pasted output).
"""

from __future__ import annotations

import re
from pathlib import Path

from facematch.report.docs import BLOCK, VALUE, Spec, load, stale
from facematch.report.provenance import missing
from facematch.report.published import FILE as PUBLISHED

FIGURE = re.compile(r"(?<![\w.\-/])\d[\d,]*(?:\.\d+)? ?(?:%|pt\b|ms\b|s\b|min\b|minutes?\b|h\b|hours?\b|seconds?\b"
                    r"|MB\b|GB\b|(?:images|img|photos)/s\b)|(?<![\w.\-/])\d+\.\d{2,}(?![\w.])")
QUOTED = re.compile(r"<!-- quoted:(?P<source>.*?)-->(?P<body>.*?)(?=\n\s*\n|\Z)", re.DOTALL)
# fenced blocks, indented blocks (lines indented 4+ after a blank line), inline code spans
CODE = [re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE),
        re.compile(r"(?<=\n\n)(?:(?: {4,}|\t)[^\n]*(?:\n|$))+"), re.compile(r"`[^`\n]+`")]
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"\]\([^)]*\)")


def _blank(text: str, span: tuple[int, int]) -> str:
    """``text`` with ``span`` replaced by spaces (newlines kept: line numbers stay right)."""
    a, b = span
    return text[:a] + re.sub(r"[^\n]", " ", text[a:b]) + text[b:]


def _source_ok(file: str, root: Path) -> list[str]:
    """Why a rendered source does not trace (empty: it does)."""
    path = (root / file).resolve()
    if path == PUBLISHED.resolve():
        return []
    return missing(load(root / file))


def untraced(md_files: list[Path], root: Path) -> list[str]:
    """One line per figure in ``md_files`` that is neither rendered from a traceable results file nor marked
    quoted, and per rendered source that does not name its command, commit and machine."""
    out = []
    for md in md_files:
        text = md.read_text()
        masked = text
        for pattern in CODE:  # on the text as written (blanking first would indent what follows a span)
            for m in list(pattern.finditer(masked)):
                masked = _blank(masked, m.span())
        for pattern, kind in ((BLOCK, "table"), (VALUE, "value")):
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                file = Spec.parse(m["marker"]).file if kind == "table" else m["marker"].split()[0]
                lacks = _source_ok(file, root)
                if lacks:
                    out.append(f"{md}:{line}: {file} (rendered here) names no {', '.join(lacks)}: "
                               "write it again with facematch-report --json, or facematch-report --stamp it")
                masked = _blank(masked, m.span())
        for m in QUOTED.finditer(masked):
            if not m["source"].strip():
                out.append(f"{md}:{text.count(chr(10), 0, m.start()) + 1}: a quoted marker names no source; "
                           "write <!-- quoted: SOURCE -->")
            masked = _blank(masked, m.span())
        for pattern in (COMMENT, LINK):
            for m in list(pattern.finditer(masked)):
                masked = _blank(masked, m.span())
        for m in FIGURE.finditer(masked):
            line = masked.count("\n", 0, m.start()) + 1
            out.append(f"{md}:{line}: {m.group()!r} is neither rendered from a results file "
                       "(<!-- value: FILE PATH -->, a table marker) nor marked <!-- quoted: SOURCE -->")
    return out


def check_docs(files: list[Path], root: Path) -> list[str]:
    """What ``facematch-report --check`` lists: every marked table or value of ``files`` that differs from its
    rendering, and every figure neither rendered from a traceable results file nor marked quoted."""
    return stale(files, root) + untraced(files, root)
