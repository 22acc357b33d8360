"""The engine settings (facematch.embedding.engine.EngineSettings): one frozen, checked object built once from
the ``embed`` group, and what ran recorded from it as the embedder resolved it (synthetic model and crops)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from facematch.config import config_dir
from facematch.embedding.embedder import Embedder
from facematch.embedding.engine import EngineSettings
from facematch.errors import FacematchError
from facematch.utils import hardware

SPEC = SimpleNamespace(name="tiny", input_size=(8, 8), template="arcface_112x112", mean=(0.5, 0.5, 0.5),
                       std=(0.5, 0.5, 0.5), embedding_dim=4)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def crops(n=3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_defaults_are_the_embed_group_and_a_composed_config_builds_them(tmp_path):
    """The dataclass's defaults are conf/embed/default.yaml's (the file explains each knob), and the
    composed ``embed`` node of both entry configs builds the settings (its ``_target_`` names the class)."""
    from tests.helpers import compose

    yaml = OmegaConf.load(Path(config_dir()) / "embed" / "default.yaml")
    assert yaml._target_ == "facematch.embedding.engine.EngineSettings"
    defaults = EngineSettings()
    for f in dataclasses.fields(EngineSettings):
        # cache_dir: ${paths.cache_dir}/embeddings, known once composed; input: an ONNX model's stated input, whose
        # defaults (nothing stated) are facematch.models.onnx_stated's
        if f.name not in ("cache_dir", "input"):
            assert getattr(defaults, f.name) == OmegaConf.to_container(yaml, resolve=False)[f.name], f.name
    for config in ("eval", "train"):
        cfg = compose(["embed.batch_size=7"], tmp_path / config, config)
        engine = EngineSettings.from_config(cfg.embed)
        assert engine.batch_size == 7 and engine.cache_path == str(cfg.embed.cache_dir)
        assert EngineSettings.from_config(cfg.embed, progress=False).progress is False
        with pytest.raises(dataclasses.FrozenInstanceError):
            engine.precision = "bf16"  # type: ignore[misc]


@pytest.mark.parametrize("bad, named", [({"precision": "fp16"}, "embed.precision='fp16'"),
                                        ({"batch_size": 0}, "embed.batch_size=0"),
                                        ({"runtime": "tensorrt"}, "embed.runtime='tensorrt'"),
                                        ({"num_workers": -1}, "embed.num_workers=-1"),
                                        ({"device": "tpu"}, "embed.device='tpu'"),
                                        ({"presicion": "fp32"}, "embed.presicion is not an engine setting")])
def test_a_bad_setting_is_one_error_naming_it(bad, named):
    with pytest.raises(FacematchError, match=named.replace("(", r"\(")):
        EngineSettings.from_config(bad)


def test_resolved_is_what_runs_onnx_in_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda: True)
    auto = EngineSettings(precision="auto")
    assert (auto.resolved().device, auto.resolved().precision) == ("cpu", "bf16")
    assert auto.resolved(onnx=True).precision == "fp32"  # an ONNX model: onnxruntime computes in fp32
    assert EngineSettings(precision="bf16", runtime="onnx").resolved().precision == "fp32"
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda: False)
    assert auto.resolved().precision == "fp32"


def test_the_embedder_records_the_engine_it_resolved_once(monkeypatch):
    """Asked for ``auto``, the embedder resolves device and precision once; its stats and :attr:`ran` are
    that object's values, and they are what the model ran in (bf16 here: the outputs differ from fp32's)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda: True)
    e = Embedder(tiny(), SPEC, flip="none", engine=EngineSettings(precision="auto", runtime="eager", progress=False))
    assert e.engine.precision == "bf16" and e.engine.device == "cpu" and e.ran["runtime"] is None
    out = e.embed_arrays(crops())
    assert e.ran == {"device": "cpu", "precision": "bf16", "runtime": "eager"}
    assert {k: e.stats[k] for k in ("device", "precision", "runtime")} == e.ran
    fp32 = Embedder(tiny(), SPEC, flip="none", precision="fp32", runtime="eager").embed_arrays(crops())
    assert not np.array_equal(out, fp32)  # bf16 really ran
    # keywords on top of the settings, and the settings object itself is never changed
    settings = EngineSettings(precision="auto")
    assert Embedder(tiny(), SPEC, engine=settings, precision="fp32").precision == "fp32"
    assert settings.precision == "auto"


def test_metrics_record_what_ran_not_what_was_asked(tmp_path):
    """metrics.json's precision / device / runtime are the verification's ``ran`` (the embedder's resolved
    engine), not the config's ``embed.precision``."""
    from facematch.eval.metrics_file import job_metrics
    from facematch.eval.verification import Protocol, Verification

    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a/1.jpg b/1.jpg 1\n")
    cfg = OmegaConf.create({"data": {"root": str(tmp_path)}, "embed": {"precision": "auto"}})
    res = Verification(report={"accuracy_mean": 1.0}, paths=["a/1.jpg", "b/1.jpg"], emb=np.zeros((2, 2)),
                       same=np.array([True]), folds=np.array([0]), cosine=np.array([1.0]), ranked=np.array([1.0]),
                       embed_stats={"precision": "stale"},
                       ran={"device": "cpu", "precision": "bf16", "runtime": "fused"})
    model = SimpleNamespace(description={"kind": "test"}, spec=SPEC)
    m = job_metrics(cfg, res, {}, model, Protocol(), SimpleNamespace(key="k"), str(pairs), {}, 0.0)
    assert (m["precision"], m["device"], m["runtime"]) == ("bf16", "cpu", "fused")
