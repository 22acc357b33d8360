"""Docs cannot go stale: the README stays short, every marked table in README.md and docs/ equals its
rendering from the result file it names, every figure in them is rendered from a results file that names
its command, commit and machine or marked quoted, every results/*.json is rendered somewhere, and no comment or
docstring in src/ or conf/ carries a measured figure (figures live in result files and the docs rendered
from them)."""

from __future__ import annotations

import ast
import io
import re
import tokenize

from facematch.report.docs import BLOCK, Spec, markdown_files, stale
from facematch.report.trace import untraced
from tests.helpers import REPO

DOCS = markdown_files([REPO / "README.md", REPO / "docs"])
# a percentage, a duration or a rate: "12.5 %", "3 s", "4.5 min", "20 hours", "170 img/s", "0.3 pt"
FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)? ?(?:%|pt\b|ms\b|s\b|min\b|minutes?\b|h\b|hours?\b|seconds?\b"
                    r"|(?:images|img|photos)/s\b)")


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200, "README.md: move details into docs/"


def test_every_docs_table_equals_its_rendering_from_the_results():
    assert sum(len(BLOCK.findall(md.read_text())) for md in DOCS) >= 10  # the convention is in use
    assert stale(DOCS, REPO) == []


def test_every_figure_in_the_docs_is_rendered_from_a_traced_results_file_or_quoted():
    assert untraced(DOCS, REPO) == []


def test_every_results_file_is_rendered_in_the_docs():
    rendered = {Spec.parse(m["marker"]).file for md in DOCS for m in BLOCK.finditer(md.read_text())}
    kept = {p.relative_to(REPO).as_posix() for p in (REPO / "results").glob("*.json")}
    assert kept and kept <= rendered, f"results not rendered in any docs table: {sorted(kept - rendered)}"


def _comments(path):
    """(line, text) of every comment, and for Python every docstring, in a source or config file."""
    text = path.read_text()
    if path.suffix == ".yaml":
        yield from ((i, line[line.index("#"):]) for i, line in enumerate(text.splitlines(), 1) if "#" in line)
        return
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
            yield node.body[0].lineno, ast.get_docstring(node)


def test_no_comment_or_docstring_carries_a_measured_figure():
    found = [f"{path.relative_to(REPO)}:{line}: {m.group()!r}"
             for root in ("src", "conf") for path in sorted((REPO / root).rglob("*")) if path.suffix in (".py", ".yaml")
             for line, text in _comments(path) for m in FIGURE.finditer(text)]
    assert found == [], "measured figures in comments (move them to docs/ via a results file): " + "; ".join(found)


def test_the_figure_pattern_catches_timings_and_percentages_but_not_settings():
    assert [m.group() for m in FIGURE.finditer("took 1.35 s, 4.5 min, 67.33 %, 170 img/s, 0.3 pt")] == [
        "1.35 s", "4.5 min", "67.33 %", "170 img/s", "0.3 pt"]
    assert not FIGURE.findall("f1s at threshold 0.6, 16 px, 2 cores, margin 1.7, lr 1e-4, 3,456 images")
