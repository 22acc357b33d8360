"""The config surface: one name per knob. Every ``_target_`` under conf/ comes from an allow-listed package,
one engine group (``embed``) serves every embedding pass, train and eval share the default arch, and an old
key or option stops with one line naming the new one (the experiments' ``exp_name``: test_configs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from facematch.config import check_config, config_dir
from facematch.utils.renamed import RENAMED_KEYS, RENAMED_OPTIONS, check_overrides
from facematch.errors import FacematchError

#: Where an instantiated object may come from: our code and the libraries the project builds on.
TARGET_PREFIXES = ("facematch.", "torch.optim.", "lightning.pytorch.", "pytorch_metric_learning.",
                   "hydra_plugins.", "optuna.samplers.")
ENGINE_KNOBS = {"batch_size", "num_workers", "device", "precision", "runtime"}


def targets(node, where: str):
    """``(where, target)`` for every ``_target_`` in a loaded YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield where, value
            else:
                yield from targets(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{where}[{i}]")


def disallowed(node, where: str) -> list[str]:
    return [f"{w}: {t}" for w, t in targets(node, where) if not str(t).startswith(TARGET_PREFIXES)]


def test_target_check_sees_a_foreign_target():
    doc = {"a": {"_target_": "facematch.models.heads.LinearHead"}, "b": [{"_target_": "os.system"}]}
    assert disallowed(doc, "doc") == ["doc.b[0]: os.system"]


def test_every_target_in_conf_is_allow_listed():
    files = sorted(Path(config_dir()).rglob("*.yaml"))
    found = {t for f in files for _, t in targets(yaml.safe_load(f.read_text()) or {}, f.name)}
    bad = [x for f in files for x in disallowed(yaml.safe_load(f.read_text()) or {}, str(f.relative_to(config_dir())))]
    assert len(found) > 20 and not bad, bad


def engine_nodes(node, path: str = "") -> list[str]:
    """Paths of every mapping in a composed config that holds an engine knob besides a batch size (data
    loaders have their own ``batch_size`` / ``num_workers``: those are not embedding passes)."""
    out = []
    if isinstance(node, dict):
        if ENGINE_KNOBS & set(node) - {"batch_size", "num_workers"}:
            out.append(path)
        for key, value in node.items():
            out += engine_nodes(value, f"{path}.{key}" if path else str(key))
    return out


@pytest.mark.parametrize("entry", ["train", "eval"])
def test_one_engine_group_serves_every_embedding_pass(cfg_factory, entry):
    cfg = OmegaConf.to_container(cfg_factory(config_name=entry), resolve=False)
    trainer = {"trainer"} if entry == "train" else set()  # Lightning's own precision / devices, not an embedder's
    assert set(engine_nodes(cfg)) - trainer == {"embed"}
    assert ENGINE_KNOBS <= set(cfg["embed"])
    assert set(cfg["data"]["features"]) == {"enabled", "views", "originals"}  # what the fast path serves, no engine knob


def test_train_and_eval_share_the_default_arch(cfg_factory):
    assert cfg_factory().arch.name == cfg_factory(config_name="eval", out="eval").arch.name == "inception_resnet_v1"


@pytest.mark.parametrize("override,new", [
    ("data.features.batch_size=64", "embed.batch_size=64"),
    ("+data.features.precision=fp32", "embed.precision=fp32"),
    ("data=lfw", "data=lfw_photos"),
    ("data=lfw_aligned112,lfw_aligned", "data=lfw_aligned112"),
    ("data=lfw_own_aligned", "data=lfw_photos_mtcnn"),
])
def test_an_old_key_or_option_is_one_line_naming_the_new(override, new):
    with pytest.raises(FacematchError) as err:
        check_overrides(["-m", "arch=mobilefacenet", override])
    assert new in str(err.value) and "\n" not in str(err.value)


def test_current_names_pass_and_every_old_option_is_gone(cfg_factory):
    check_overrides(["-m", "data=lfw_photos,lfw_aligned112,lfw_photos_mtcnn", "embed.batch_size=8", "arch=mobilefacenet"])
    cfg = cfg_factory("embed.batch_size=8")
    check_config(cfg)
    groups = {g: {p.stem for p in (Path(config_dir()) / g).glob("*.yaml")} for g in RENAMED_OPTIONS}
    for group, renames in RENAMED_OPTIONS.items():
        assert not groups[group] & set(renames) and set(renames.values()) <= groups[group]
    for old in RENAMED_KEYS:
        OmegaConf.update(cfg, old, 1, force_add=True)
        with pytest.raises(FacematchError, match=f"{old} is now embed"):
            check_config(cfg)
        OmegaConf.update(cfg, old, None, force_add=True)
