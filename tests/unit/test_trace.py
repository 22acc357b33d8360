"""Every figure in the docs traceable (facematch.report.trace): rendered from a results file that names its
command, commit and machine (a table marker or an inline value marker), or marked quoted with its source;
the inline values render and go stale like the tables; old results files get their provenance and published
figures rewritten by code."""

from __future__ import annotations

import json

import pytest

from facematch.errors import FacematchError
from facematch.report import published
from facematch.report.docs import rewrite, stale
from facematch.report.provenance import derive, missing
from facematch.report.trace import untraced

PROVENANCE = {"command": "facematch-report --json r.json runs/", "commit": "abc1234", "machine": {"cpu": "x"}}
ROWS = [{"exp": "a", "margin": "0.2", "accuracy_mean": 0.8738}, {"exp": "b", "margin": "0.2", "accuracy_mean": 0.905}]


@pytest.fixture
def root(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"rows": ROWS, "provenance": PROVENANCE}))
    (tmp_path / "bare.json").write_text(json.dumps({"rows": ROWS}))
    return tmp_path


def _md(root, text: str):
    md = root / "page.md"
    md.write_text(text)
    return md


def test_a_figure_neither_rendered_nor_quoted_fails_naming_its_line(root):
    md = _md(root, "Intro.\n\nThe row reaches 90.50 % on fold 0.\n")
    assert untraced([md], root) == [f"{md}:3: '90.50 %' is neither rendered from a results file "
                                    "(<!-- value: FILE PATH -->, a table marker) nor marked <!-- quoted: SOURCE -->"]
    # also a bare decimal, a duration and a size
    md = _md(root, "AUC 0.932, 413 s wall, 41.6 MB, ranked 0.7 at `lr 0.001`.\n")
    assert [line.split("'")[1] for line in untraced([md], root)] == ["0.932", "413 s", "41.6 MB"]


def test_rendered_quoted_and_code_figures_pass(root):
    md = _md(root, "Row b: <!-- value: r.json rows[exp=b].accuracy_mean:pct -->90.50<!-- /value --> %.\n\n"
                   "<!-- quoted: the weights' README -->The checkpoint's own figure is 99.30 %,\n"
                   "and 98.9 % elsewhere in the same paragraph.\n\n"
                   "```\ntook 4.7 s\n```\n\nA setting: `margin 0.35`.\n\n"
                   "<!-- table: r.json rows=rows exp=exp acc=accuracy_mean:.2% -->\n"
                   "| exp | acc |\n|---|---|\n| a | 87.38% |\n| b | 90.50% |\n<!-- /table -->\n")
    assert untraced([md], root) == [] and stale([md], root) == []
    # the quoted marker covers its paragraph only
    md.write_text(md.read_text() + "\nOutside it: 12.25 %.\n")
    assert [line.split("'")[1] for line in untraced([md], root)] == ["12.25 %"]


def test_a_quote_needs_a_source_and_a_rendered_file_its_provenance(root):
    md = _md(root, "<!-- quoted: -->Quoted 99.30 %.\n\n"
                   "<!-- value: bare.json rows.0.accuracy_mean:.4f -->0.8738<!-- /value -->\n")
    out = untraced([md], root)
    assert out[0].endswith("names no command, commit, machine: write it again with facematch-report --json, "
                           "or facematch-report --stamp it")
    assert "a quoted marker names no source" in out[1] and len(out) == 2
    # the published figures' file is quoted by construction: each table names its document
    md = _md(root, f'<!-- value: {published.FILE} "facenet_implementation.figures[id=kNN,key=1.9].text" -->'
                   "<!-- /value -->\n")
    text = rewrite(md.read_text(), root)
    assert text.count("(VggFace2)<!-- /value -->") == 1
    md.write_text(text)
    assert untraced([md], root) == []


def test_inline_values_render_by_row_fields_and_a_hand_edit_is_stale(root):
    md = _md(root, "a: <!-- value: r.json rows[exp=a,margin=0.2].accuracy_mean:pct --><!-- /value -->, "
                   "b: <!-- value: r.json rows.1.accuracy_mean:.1% -->old<!-- /value -->\n")
    text = rewrite(md.read_text(), root)
    assert text == ("a: <!-- value: r.json rows[exp=a,margin=0.2].accuracy_mean:pct -->87.38<!-- /value -->, "
                    "b: <!-- value: r.json rows.1.accuracy_mean:.1% -->90.5%<!-- /value -->\n")
    md.write_text(text.replace("87.38", "87.40"))
    (line,) = stale([md], root)
    assert "reads '87.40', its rendering '87.38'; run facematch-report --docs" in line
    with pytest.raises(FacematchError, match="no rows\\[exp=c\\].accuracy_mean in r.json; fix the path"):
        rewrite("<!-- value: r.json rows[exp=c].accuracy_mean --><!-- /value -->", root)


def test_an_old_file_gets_its_provenance_from_its_own_fields(tmp_path):
    path = tmp_path / "old.json"
    doc = {"source": {"commit": "dd3f811", "command": "facematch-report outputs/explore", "machine": "2 cores"}}
    block = derive(doc, path)
    assert {k: block[k] for k in ("command", "commit", "machine")} == {
        "command": "facematch-report outputs/explore", "commit": "dd3f811", "machine": "2 cores"}
    assert missing({"provenance": block}) == [] and missing({}) == ["command", "commit", "machine"]
    with pytest.raises(FacematchError, match="records no command, machine; pass --command"):
        derive({"source": {"commit": "dd3f811"}}, path)


def test_republish_rewrites_old_rows_from_the_file_by_margin():
    old = {"kind": "facematch-report", "rows": [
        {"exp": "s", "margin": "0.7", "published": {"source": "x", "pair_accuracy": 0.5}},
        {"exp": "s", "margin": "1.9", "published": {"source": "x", "pair_accuracy": 0.5}},
        {"exp": "t", "margin": "0.2"}]}
    with pytest.raises(FacematchError, match="pass --table NAME"):
        published.republish(json.loads(json.dumps(old)))
    doc = published.republish(old, "facenet_implementation")
    assert doc["rows"][0]["published"]["figures"] == {} and "published" not in doc["rows"][2]
    figs = doc["rows"][1]["published"]["figures"]
    expected = {f["id"]: f["text"] for f in published.table("facenet_implementation")["figures"] if f["key"] == 1.9}
    assert {k: v["text"] for k, v in figs.items()} == expected
    assert published.republish(doc) == doc  # the rows now name their table: no --table needed again
