"""The published figures live in one file (src/facematch/report/published.yaml): every experiment row that
names a table there is keyed by that table's own keys (the FaceNet table's margins 1.7 and 1.9, the Face
Matching table's rows), every figure names a metric facematch computes (or none), the figures agree with
the transcribed cells, and no other file under conf/, src/, tests/ or scripts/ carries one."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from facematch.report.rows import FoldJob, combine_folds
from facematch.config import config_dir
from facematch.report import published
from tests.helpers import REPO
from tests.helpers import config_options as options

EXPERIMENTS = [e for e in options("experiment") if not e.startswith("_")]
# the metrics a published figure may stand beside: those a facematch-report row carries (combine_folds,
# an evaluation's metrics.json) and scripts/collect_curves.py's validation template accuracy of the kept epoch
REPORT_METRICS = {"template_rank_1", "final_loss", "f1_at_threshold", "accuracy_at_threshold"}
CURVE_METRICS = {"val_template_rank_1"}


def _margins(cfg) -> set[float]:
    """The margins a row runs: its sweep's list, else its one margin."""
    swept = OmegaConf.select(cfg, "hydra.sweeper.params.margin", default=None)
    values = str(swept).split(",") if swept is not None else [cfg.margin]
    return {float(v) for v in values}


def _composed():
    """Every experiment row, composed as the CLI composes it (with its hydra node: the sweep)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for exp in EXPERIMENTS:
            yield exp, compose(config_name="train", overrides=[f"experiment={exp}"], return_hydra_config=True)
    GlobalHydra.instance().clear()


@pytest.mark.slow  # composes every experiment
def test_every_row_naming_a_published_table_is_keyed_by_that_tables_keys():
    carrying = {}
    for exp, cfg in _composed():
        ref = OmegaConf.to_container(cfg.published) if cfg.get("published") else None
        if not ref:
            continue
        t = published.table(ref["table"])
        keys = {f["key"] for f in t["figures"]}
        if t["keyed_by"] == "margin":
            assert "row" not in ref, exp
            assert keys <= _margins(cfg), f"{exp} runs margins {_margins(cfg)}, the table is keyed {keys}"
            for margin in keys:  # every published margin finds its figures, each under a known metric name
                figs = published.for_config({"published": ref, "margin": margin})["figures"]
                assert figs and {f["facematch"] for f in figs.values()} - {None} <= REPORT_METRICS | CURVE_METRICS
            assert published.for_config({"published": ref, "margin": 0.7})["figures"] == {}
        else:
            assert ref["row"] in keys, exp
            figs = published.for_config({"published": ref, "margin": cfg.get("margin")})["figures"]
            assert figs and all(f["facematch"] in REPORT_METRICS for f in figs.values())
            rows = {f["facematch_row"] for f in t["figures"] if f["key"] == ref["row"]}
            assert rows == {exp}, f"{exp} is keyed {ref['row']}, whose figures name {rows}"
            assert "inception_resnet_v1" in cfg.arch.name  # the published arch, not MobileFaceNet
        carrying[exp] = ref
    # the rows that carry published figures: the FaceNet reproduction, the from-scratch rows, and the
    # Inception-ResNet-v1 rows of the first table
    assert {"seed2_facenet", "seed2_facenet_cpu", "scratch_resnet50", "scratch_resnet50_cpu",
            "exp1_pretrained_irv1", "exp2_contrastive_adam_irv1", "exp3_triplet_adam_irv1"} <= set(carrying)
    assert "exp1_pretrained" not in carrying and "scratch_mobilefacenet_cpu_triplet" not in carrying


def test_the_report_metrics_named_in_the_file_are_ones_a_report_row_carries():
    job = {"fold": 0, "fold_accuracy": 0.9, "fold_scores": [0.9, 0.1], "fold_protocol_scores": [0.8, -0.2],
           "fold_same": [1, 0], "identification": {"template": {"template_rank_1": 0.5, "template_rank_5": 0.7}},
           "train_metrics": {"train/loss_epoch": 0.3}}
    row = combine_folds([FoldJob(job, 0.6)])
    named = {f["facematch"] for t in published.tables().values() for f in t["figures"]} - {None}
    assert named == REPORT_METRICS | CURVE_METRICS
    assert REPORT_METRICS <= set(row)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", text)]


@pytest.mark.parametrize("name", ["face_matching", "facenet_implementation"])
def test_each_figure_is_a_number_of_its_transcribed_cell(name):
    t = published.table(name)
    assert all(len(r) == len(t["header"]) for r in t["rows"])
    assert t["footnotes"] and t["notes"] and t["document"].startswith("seeds/")
    for f in t["figures"]:
        assert f["unit"] in published.UNITS and f["original_code"] and f["why"]
        assert _numbers(f["text"])[0] == f["value"]
        if name == "facenet_implementation":  # a cell per row label and margin column
            label = f["id"].split(" (")[0]
            row = next(r for r in t["rows"] if r[0] == label)
            cell = row[t["header"].index(f"Margin = {f['key']}")]
        else:  # rows keyed exp1, exp2, exp3 in table order
            cell = t["rows"][int(f["key"][-1]) - 1][t["header"].index(f["id"])]
        assert f["text"] in cell
    # every number of every cell is some figure's
    cells = [c for r in t["rows"] for c in r if _numbers(c) and not c.startswith("exp")]
    assert sorted(n for c in cells for n in _numbers(c)) == sorted(f["value"] for f in t["figures"])


def test_no_other_file_carries_a_published_figure():
    """Each figure of three or more significant digits, as printed and as a fraction (how configs and
    metrics hold accuracies), is found under conf/, src/, tests/ and scripts/ only in published.yaml."""
    forms = set()
    for t in published.tables().values():
        for f in t["figures"]:
            printed = _numbers(f["text"])[0]
            if len(re.sub(r"\D", "", f"{printed:g}").lstrip("0")) < 3:
                continue  # 0.99, 0.53, 0.83: too common to search for
            forms.add(f"{printed:g}")
            if f["unit"] == "percent":
                forms.add(f"{np.round(printed / 100, 6):g}")
    pattern = re.compile(r"(?<![\d.])(?:" + "|".join(re.escape(x) for x in sorted(forms)) + r")(?!\d)")
    found = [f"{p.relative_to(REPO)}: {m.group()}" for root in ("conf", "src", "tests", "scripts")
             for p in sorted((REPO / root).rglob("*")) if p.is_file() and p.suffix in (".py", ".yaml", ".json", ".md")
             and p != published.FILE for m in pattern.finditer(p.read_text())]
    assert found == []
