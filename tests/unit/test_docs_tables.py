"""Docs tables rendered from result files: the marker convention, the generic and the report renderers,
rewriting a stale block and naming it."""

from __future__ import annotations

import json

import pytest

from facematch.cli.report import main as report_main
from facematch.errors import FacematchError
from facematch.report.docs import REPORT_KIND, Spec, render, rewrite, stale

BENCH = {"backbones": {"mobilefacenet": {"on": {"images_per_s": 142.61}, "speedup": 3.937},
                       "resnet50": {"on": {"images_per_s": 43.02}, "speedup": 1.638}},
         "figures": {"dir_at_far": {"1e-2": {"dir": 0.75771}}, "within_0.1_pt": True}}
ROW = {"exp": "adapt16_head", "data": "lfw-aligned-112 @ res16", "arch": "mobilefacenet (frozen)",
       "pretrained on": "CASIA-WebFace", "loss": "triplet (batch_hard)", "margin": "0.2", "optimizer": "Adam lr=0.001",
       "scheduler": "CosineAnnealingLR", "accuracy_mean": 0.8738, "accuracy_std": 0.0206, "n_folds": 10,
       "val_at_far_1e-3": 0.311, "val_scores": "protocol", "seconds": 228.0, "kept": "start on 0/10 folds",
       "published": {"table": "x", "source": "paper X", "arch": "resnet", "key": 0.2,
                     "figures": {"acc": {"text": "80.5 (X)", "value": 80.5, "unit": "percent",
                                         "facematch": "accuracy_mean"}}}}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    (tmp_path / "runs.json").write_text(json.dumps({"kind": REPORT_KIND, "rows": [ROW]}))
    return tmp_path


def test_generic_columns_follow_paths_into_each_row_with_a_format(root):
    spec = Spec.parse('bench.json rows=backbones backbone=@key "images/s on=on.images_per_s:.1f" on/off=speedup:.2f')
    assert render(spec, root).splitlines() == [
        "| backbone | images/s on | on/off |", "|---|---|---|",
        "| mobilefacenet | 142.6 | 3.94 |", "| resnet50 | 43.0 | 1.64 |"]
    # no rows=: the whole file is one row; a key may hold dots, a format may be a percentage
    one = Spec.parse("bench.json DIR=figures.dir_at_far.1e-2.dir:.2% same=figures.within_0.1_pt")
    assert render(one, root).splitlines()[2] == "| 75.77% | True |"
    # /PATH reads from the file's top; a column some rows lack is "—" there
    top = Spec.parse("bench.json rows=backbones b=@key dir=/figures.dir_at_far.1e-2.dir:.3f r=on.rounds")
    bench = json.loads((root / "bench.json").read_text())
    bench["backbones"]["resnet50"]["on"]["rounds"] = [1, 2]
    (root / "bench.json").write_text(json.dumps(bench))
    assert render(top, root).splitlines()[2:] == ["| mobilefacenet | 0.758 | — |", "| resnet50 | 0.758 | [1, 2] |"]


def test_report_files_render_the_report_table_its_columns_or_the_published_view(root):
    full = render(Spec.parse("runs.json"), root)
    assert "| adapt16_head | lfw-aligned-112 @ res16 |" in full and "| 87.38 ± 2.06 | 31.10 |" in full
    assert "| 3.8 min | start on 0/10 folds |" in full
    cut = render(Spec.parse('runs.json "columns=exp|10-fold acc ± std"'), root)
    assert cut.splitlines() == ["| exp | 10-fold acc ± std |", "|---|---|", "| adapt16_head | 87.38 ± 2.06 |"]
    published = render(Spec.parse("runs.json view=published"), root)
    assert published.splitlines()[0].endswith("| published arch | acc ~ accuracy_mean (ours / published) |")
    assert published.splitlines()[2] == "| adapt16_head | mobilefacenet (frozen) | 0.2 | 10 | resnet | 87.38 / 80.5 (X) |"


def test_a_wrong_marker_or_a_missing_source_is_one_clear_error(root):
    with pytest.raises(FacematchError, match="no x.images_per_s in any row; fix the marker's column 'a'"):
        render(Spec.parse("bench.json rows=backbones a=x.images_per_s"), root)
    with pytest.raises(FacematchError, match="no report column 'accuracy'"):
        render(Spec.parse("runs.json columns=exp|accuracy"), root)
    with pytest.raises(FacematchError, match="gone.json not found"):
        render(Spec.parse("gone.json a=b"), root)
    with pytest.raises(FacematchError, match="names no columns"):
        render(Spec.parse("bench.json"), root)


def test_rewrite_renders_every_block_and_check_names_a_stale_one(root, capsys):
    doc = root / "docs" / "speed.md"
    doc.parent.mkdir()
    marker = "<!-- table: bench.json rows=backbones backbone=@key x=speedup:.1f -->"
    prose = "Quoted inline, `<!-- table: gone.json -->` and `<!-- /table -->` are no block.\n"
    doc.write_text(f"# Speed\n\n{marker}\n| old | table |\n<!-- /table -->\n\ntext after\n{prose}")
    [line] = stale([doc], root)
    assert line.startswith(f"{doc}:3: the table of bench.json") and "facematch-report --docs" in line
    new = rewrite(doc.read_text(), root)
    assert new == (f"# Speed\n\n{marker}\n| backbone | x |\n|---|---|\n| mobilefacenet | 3.9 |\n| resnet50 | 1.6 |\n"
                   "<!-- /table -->\n\ntext after\n" + prose)
    with pytest.raises(SystemExit) as exit_:
        report_main(["--check", str(doc.parent), "--root", str(root)])
    assert exit_.value.code == 1 and "speed.md:3:" in capsys.readouterr().out
    report_main(["--docs", str(doc.parent), "--root", str(root)])
    assert doc.read_text() == new and stale([doc], root) == []
