"""ONNX export and the onnx runtime on synthetic inputs: every backbone (random init) round-trips within
1e-4 cosine of PyTorch at batch sizes 1 and 3 (the dynamic batch axis), the metadata (preprocessing,
fingerprint, calibration) survives the file, and bad files are one-line errors."""

from __future__ import annotations

import copy

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from facematch.errors import FacematchError, WeightsError
from facematch.models.inference import MAX_COSINE_GAP, RUNTIMES, build, check_runtime, choose
from facematch.models.loading import build_arch_model
from facematch.models.onnx_export import FORMAT, KEYS, NOT_CALIBRATED, PREFIX, export_model
from facematch.models.onnx_file import load_onnx_model
from facematch.models.onnx_runtime import OnnxModule

CPU = torch.device("cpu")


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).min())


def images(spec, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, *spec.input_size, generator=g)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``name -> (EvalModel, path)``: each backbone with random init, exported once for the module."""
    out, done = tmp_path_factory.mktemp("onnx"), {}

    def get(name: str):
        if name not in done:
            torch.manual_seed(0)
            model = build_arch_model(name)
            done[name] = (model, export_model(model, out / f"{name}.onnx").path)
        return done[name]

    return get


def first_of_each_module() -> list[str]:
    """One name per backbone module (its first declaration: iresnet18 stands for iresnet34/50/100, which
    differ only in depth), so the round trip covers every network without exporting the deep variants."""
    import importlib
    import pkgutil

    import facematch.models.backbones as package

    modules = (importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__))
    return sorted(m.DECLARATIONS[0].name for m in modules if getattr(m, "DECLARATIONS", ()))


@pytest.mark.slow
@pytest.mark.parametrize("name", first_of_each_module())
def test_every_backbone_round_trips_at_dynamic_batch_sizes(exported, name):
    model, path = exported(name)
    loaded = load_onnx_model(path)
    assert loaded.spec == model.spec and loaded.fingerprint == model.fingerprint
    for n in (1, 3):
        x = images(model.spec, n, seed=n)
        with torch.inference_mode():
            ref, out = model.module(x), loaded.module(x)
        assert out.shape == ref.shape == (n, model.spec.embedding_dim)
        assert min_cosine(out, ref) >= 1 - MAX_COSINE_GAP, name


def test_metadata_says_what_the_model_needs(exported):
    model, path = exported("mobilefacenet")
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert {PREFIX + k for k in KEYS} <= set(props)
    loaded = load_onnx_model(path)
    spec = model.spec
    d = loaded.description
    assert d["kind"] == "onnx" and d["arch"] == "mobilefacenet" and d["embedding_dim"] == 128 and d["opset"] >= 18
    assert d["exported_from"]["weights_sha256"] == model.fingerprint and d["output"] == "backbone features"
    assert props[PREFIX + "format"] == f'"{FORMAT}"' and props[PREFIX + "input_layout"] == '"NCHW"'
    assert props[PREFIX + "input_size"] == str(list(spec.input_size)) and props[PREFIX + "template"] == f'"{spec.template}"'
    assert loaded.calibration is None and NOT_CALIBRATED in props[PREFIX + "calibration_status"]


def test_an_onnx_model_runs_only_onnx_whatever_the_runtime(exported, monkeypatch):
    """(``runtime=onnx`` on a PyTorch module, an in-memory export, is checked on LFW crops in
    tests/integration/test_onnx.py: each export takes several seconds.)"""
    model, path = exported("mobilefacenet")
    assert "onnx" in RUNTIMES and check_runtime("onnx") == "onnx"
    x = images(model.spec, 3)
    with torch.inference_mode():
        ref = model.module(x)
    loaded = load_onnx_model(path).module
    for runtime in ("eager", "fused", "jit"):
        assert build(loaded, runtime, CPU, example=x).runtime == "onnx"
    import facematch.models.inference as inference

    def no_rewrite(module, runtime, *a, **kw):
        assert runtime == "onnx", f"auto tried {runtime} on an ONNX model"
        return real(module, runtime, *a, **kw)

    real = inference.build
    monkeypatch.setattr(inference, "build", no_rewrite)
    chosen = choose(loaded, x, CPU, n_images=10**5)
    with torch.inference_mode():
        assert chosen.runtime == "onnx" and min_cosine(chosen(x), ref) >= 1 - MAX_COSINE_GAP


def test_onnx_module_copies_and_cache_keys(exported):
    from facematch.embedding.embedder import Embedder

    model, path = exported("mobilefacenet")
    loaded = load_onnx_model(path)
    x = images(model.spec, 1)
    with torch.inference_mode():
        first = loaded.module(x)
    twin = copy.deepcopy(loaded.module)  # a copy opens its own session
    assert twin.model_bytes is loaded.module.model_bytes and not twin._sessions
    with torch.inference_mode():
        assert torch.equal(twin(x), first)
    other = OnnxModule(loaded.module.model_bytes, "cd" * 32)
    keys = {Embedder(m, model.spec).fingerprint for m in (loaded.module, twin, other, model.module)}
    assert len(keys) == 3  # per exported weights; never the PyTorch module's, whose cache holds other outputs


def tiny_onnx(path, metadata: dict | None = None):
    """A valid one-node ONNX model (Identity), optionally with facematch metadata."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 96])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3, 112, 96])
    proto = helper.make_model(helper.make_graph([helper.make_node("Identity", ["input"], ["embedding"])], "g", [x], [y]))
    for k, v in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, path)
    return path


@pytest.mark.parametrize("case,needle", [
    ("missing", "ONNX model not found"),
    ("text", "is not an ONNX model"),
    ("bare", "has no facematch metadata"),
    ("version", "format 'facematch-onnx/0'"),
    ("json", "metadata is not JSON"),
])
def test_bad_files_are_one_line_weights_errors(tmp_path, case, needle):
    path = tmp_path / f"{case}.onnx"
    if case == "text":
        path.write_text("not a model\n" * 10)
    elif case == "bare":
        tiny_onnx(path)
    elif case == "version":
        tiny_onnx(path, {PREFIX + "format": '"facematch-onnx/0"'})
    elif case == "json":
        tiny_onnx(path, {PREFIX + "format": "{not json"})
    with pytest.raises(WeightsError) as err:
        load_onnx_model(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg and "facematch-export" in msg


def test_metadata_that_disagrees_with_the_backbone_is_refused(exported, tmp_path):
    model, path = exported("mobilefacenet")
    proto = onnx.load(path)
    for entry in proto.metadata_props:
        if entry.key == PREFIX + "input_size":
            entry.value = "[112, 112]"
    onnx.save(proto, tmp_path / "edited.onnx")
    with pytest.raises(WeightsError, match=r"input_size \[112, 112\] is not mobilefacenet's \[112, 96\]"):
        load_onnx_model(tmp_path / "edited.onnx")


def test_eval_load_model_takes_one_of_ckpt_and_onnx(exported):
    from facematch.models.loading import load_model

    _, path = exported("mobilefacenet")
    assert load_model(None, None, str(path)).description["kind"] == "onnx"
    with pytest.raises(FacematchError, match="not both"):
        load_model("last.ckpt", None, str(path))


def test_export_cli_on_a_checkpoint_carries_its_head_and_calibration(tmp_path, capsys):
    """``facematch-export --ckpt``: a facematch-train checkpoint (backbone + 64-d head, a calibration stored
    in it) -> a file whose output is the head's projection and whose calibration, keyed by the PyTorch
    fingerprint, is found on the ONNX model; the CLI prints what it wrote and its check."""
    from facematch.cli.export import main
    from facematch.models.backbones import build_backbone
    from facematch.calibration.store import Calibration, find_calibration
    from facematch.models.heads import LinearHead
    from facematch.models.loading import state_dict_sha256

    torch.manual_seed(1)
    state = {**{f"backbone.{k}": v for k, v in build_backbone("mobilefacenet").state_dict().items()},
             **{f"head.{k}": v for k, v in LinearHead(128, 64, init="random").state_dict().items()}}
    cal = Calibration(state_dict_sha256(state), {"far_1e-3": {"threshold": 0.42, "far": 0.001, "tar": 0.9}},
                      "far_1e-3", {"arch": "mobilefacenet", "flip": "concat"}, {"pairs": "pairs.txt"})
    arch = {"_target_": "facematch.models.backbones.build_backbone", "name": "mobilefacenet", "weights": None}
    head = {"_target_": "facematch.models.heads.LinearHead", "_partial_": True, "dim": 64, "init": "random"}
    ckpt, out = tmp_path / "last.ckpt", tmp_path / "model.onnx"
    torch.save({"epoch": 3, "state_dict": {f"net.{k}": v for k, v in state.items()},
                "facematch": {"arch": arch, "head": head, "config": {}, "calibration": cal.as_dict()}}, ckpt)
    assert main(["--ckpt", str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "64-d head projection" in printed and "sphereface_112x96" in printed
    assert "decision   threshold 0.4200 (calibrated, far_1e-3" in printed
    gap = float(printed.split("max cosine gap ")[1].split()[0])
    assert 0 <= gap <= MAX_COSINE_GAP
    loaded = load_onnx_model(out)
    found, _ = find_calibration(loaded)
    assert loaded.fingerprint == cal.fingerprint and found is not None and found.threshold() == 0.42
    assert loaded.description["exported_from"]["kind"] == "checkpoint" and loaded.description["embedding_dim"] == 64
