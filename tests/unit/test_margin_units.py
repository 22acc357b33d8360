"""The top-level ``margin``: one knob, read in the unit the selected loss config declares (``margin_unit``), its
default the loss's own, and a margin outside that unit's range one ``error:`` line (facematch.config.check_margin)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facematch.config import MARGIN_UNITS, check_config, config_dir
from facematch.errors import FacematchError, run_or_exit
from tests.helpers import compose

LOSSES = sorted(p.stem for p in (Path(config_dir()) / "loss").glob("*.yaml"))


def test_every_loss_config_declares_the_unit_it_reads_the_margin_in(tmp_path):
    for name in LOSSES:
        cfg = compose([f"loss={name}"], tmp_path / name)
        unit = cfg.margin_unit
        assert unit is None or unit in MARGIN_UNITS, name
        if unit is None:  # reads no margin: none is set, so a sweep over it cannot look like one
            assert "margin" not in cfg, name
        else:
            least, most, _ = MARGIN_UNITS[unit]
            assert least <= cfg.margin <= most, name
            check_config(cfg)
    text = {n: yaml.safe_load((Path(config_dir()) / "loss" / f"{n}.yaml").read_text()) for n in LOSSES}
    assert "margin_unit" in text["arcface"] and "margin_unit" in text["cosface"] and "margin_unit" in text["distill"]


@pytest.mark.parametrize("exp, unit, margin", [("adapt16_arcface", "radians", 0.5), ("adapt24_cosface", "cosine", 0.35),
                                               ("adapt16_subcenter_arcface", "radians", 0.5),
                                               ("adapt16_stages", "distance", 0.2), ("adapt16_distill", None, None)])
def test_adapted_rows_train_with_their_own_loss_margin(tmp_path, exp, unit, margin):
    """No adaptation row sets another loss's margin: the ArcFace / CosFace rows read their loss's default, the
    triplet rows the triplet loss's (0.2), and the experiment files do not name a margin at all."""
    cfg = compose([f"experiment={exp}"], tmp_path)
    assert cfg.margin_unit == unit and cfg.get("margin") == margin
    if unit == "radians":
        assert cfg.model.loss.margin_unit == "radians" and cfg.model.loss.margin == margin
    for shared in ("_adapt", "_adapt_last3", exp):
        assert "margin" not in yaml.safe_load((Path(config_dir()) / "experiment" / f"{shared}.yaml").read_text())


def test_margin_is_the_sweep_knob_of_every_loss(tmp_path):
    for loss, value in (("contrastive", 1.5), ("triplet", 1.7), ("arcface", 0.3), ("cosface", 0.2)):
        cfg = compose([f"loss={loss}", f"margin={value}"], tmp_path / loss)
        assert cfg.model.loss.margin == value
        check_config(cfg)


@pytest.mark.parametrize("overrides, named", [
    (["experiment=adapt16_arcface", "margin=20"], "margin=20 is outside arcface's range: it reads margin as an angle in radians"),
    (["loss=cosface", "margin=1.5"], "margin=1.5 is outside cosface's range: it reads margin as a cosine"),
    (["loss=triplet", "margin=-0.2"], "margin=-0.2 is outside triplet's range"),
    (["loss=contrastive", "margin=3"], "margin=3 is outside contrastive's range: it reads margin as a Euclidean distance"),
])
def test_a_margin_outside_its_loss_range_stops_with_one_line(tmp_path, capsys, overrides, named):
    cfg = compose(overrides, tmp_path)
    with pytest.raises(FacematchError, match=named):
        check_config(cfg)
    with pytest.raises(SystemExit) as stop:
        run_or_exit(check_config, cfg)
    err = capsys.readouterr().err
    assert stop.value.code != 0 and err.startswith("error: margin=") and err.count("\n") == 1, err
