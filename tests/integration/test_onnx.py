"""ONNX on real data: embeddings of LFW crops through the Embedder match PyTorch within 1e-4 cosine for
each backbone (MobileFaceNet with its CASIA weights; Inception-ResNet-v1 and ResNet-50 with random init, as
no face weights of theirs are here); ``facematch-export`` then ``facematch-compare --onnx`` gives PyTorch's
similarity; ``facematch-eval onnx_path=...`` gives PyTorch's accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facematch.embedding.embedder import Embedder
from facematch.data.source import FaceSource
from facematch.models.inference import MAX_COSINE_GAP
from facematch.models.loading import build_arch_model
from facematch.models.onnx_export import export_model
from facematch.models.onnx_file import load_onnx_model
from tests.helpers import tiny_pairs

CROPS = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg",
         "George_W_Bush/George_W_Bush_0007.jpg", "Colin_Powell/Colin_Powell_0040.jpg"]


@pytest.fixture(scope="module")
def mfn_onnx(tmp_path_factory, mfn_weights):
    """The MobileFaceNet weights exported by the CLI (the calibration shipped for them goes along)."""
    from facematch.cli.export import main

    out = tmp_path_factory.mktemp("onnx") / "mobilefacenet.onnx"
    assert main(["--arch", "mobilefacenet", "--weights", str(mfn_weights), "--out", str(out)]) == 0
    return out


def lfw_crops(data_dir, template: str) -> np.ndarray:
    """lfw-aligned-112 (arcface_112x112) crops converted to ``template`` by the project's FaceSource."""
    src = FaceSource(data_dir / "lfw-aligned-112", template, mode="prealigned", src_template="arcface_112x112")
    return np.stack([src(rel) for rel in CROPS])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(torch.nn.functional.cosine_similarity(torch.from_numpy(a).double(), torch.from_numpy(b).double()).min())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilefacenet", "inception_resnet_v1", "resnet50"])
def test_onnx_embeddings_match_pytorch_on_lfw_crops(name, data_dir, mfn_weights, mfn_onnx, tmp_path, capsys):
    if name == "mobilefacenet":
        model, path = build_arch_model(name, str(mfn_weights)), mfn_onnx
    else:
        torch.manual_seed(0)  # random init: no face weights of this backbone are available
        model = build_arch_model(name)
        path = export_model(model, tmp_path / f"{name}.onnx").path
    crops = lfw_crops(data_dir, model.spec.template)
    kw = dict(flip="concat", precision="fp32", device="cpu", progress=False)
    ref = Embedder(model.module, model.spec, runtime="eager", **kw).embed_arrays(crops)
    loaded = load_onnx_model(path)
    e = Embedder(loaded.module, loaded.spec, runtime="auto", **kw)
    gaps = {"file": 1 - min_cosine(e.embed_arrays(crops), ref)}
    assert e.stats["runtime"] == "onnx"
    if name == "mobilefacenet":  # runtime=onnx on the PyTorch model: the same export, in memory
        e = Embedder(model.module, model.spec, runtime="onnx", **kw)
        gaps["runtime=onnx"] = 1 - min_cosine(e.embed_arrays(crops), ref)
        assert e.stats["runtime"] == "onnx"
    with capsys.disabled():
        print(f"\n{name}: max cosine gap ONNX vs PyTorch on {len(crops)} LFW crops (x2 views): "
              + ", ".join(f"{k} {v:.2e}" for k, v in gaps.items()))
    assert max(gaps.values()) <= MAX_COSINE_GAP, gaps


def test_compare_with_the_exported_file_gives_pytorchs_similarity(mfn_onnx, mfn_weights, lfw_root, capsys):
    """fp32 on both sides: onnxruntime runs fp32, and ``--precision auto`` is bf16 on a CPU with native bf16."""
    from facematch.cli.compare import main

    photos = [str(lfw_root / rel) for rel in ("George_W_Bush/George_W_Bush_0007.jpg",
                                               "George_W_Bush/George_W_Bush_0016.jpg")]
    results = {}
    for what, model in (("onnx", ["--onnx", str(mfn_onnx)]), ("pytorch", ["--weights", str(mfn_weights)])):
        assert main([*photos, *model, "--threshold", "0.37", "--json", "--device", "cpu", "--precision", "fp32"]) == 0
        results[what] = json.loads(capsys.readouterr().out)
    assert abs(results["onnx"]["similarity"] - results["pytorch"]["similarity"]) <= 1e-4, results
    assert results["onnx"]["same"] == results["pytorch"]["same"]


def fp32_eval_args(data_dir, tmp_path) -> list[str]:
    """facematch-eval on 16 LFW pairs, fp32 on the CPU (onnxruntime's precision), outputs beside the metrics off."""
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    return ["data=lfw_aligned112", f"data.root={data_dir / 'lfw-aligned-112'}", f"data.pairs={pairs}",
            "embed.num_workers=0", "embed.progress=false", "embed.device=cpu", "embed.precision=fp32",
            f"embed.cache_dir={tmp_path / 'emb'}", "eval.plots=false", "eval.tensorboard=false",
            "eval.identification=false"]


def test_eval_with_onnx_path_gives_pytorchs_accuracy(cfg_factory, data_dir, mfn_weights, mfn_onnx, tmp_path):
    from facematch.eval.job import evaluate

    common = fp32_eval_args(data_dir, tmp_path)
    torch_m = evaluate(cfg_factory(*common, "arch=mobilefacenet", f"arch.weights={mfn_weights}", config_name="eval",
                                   out="pytorch"))
    onnx_m = evaluate(cfg_factory(*common, f"onnx_path={mfn_onnx}", config_name="eval", out="onnx"))
    assert onnx_m["model"]["kind"] == "onnx" and onnx_m["runtime"] == "onnx"
    assert onnx_m["embedding_cache_hit"] is False  # its own cache entry, not the PyTorch model's
    assert onnx_m["accuracy_mean"] == torch_m["accuracy_mean"] and onnx_m["n_pairs"] == torch_m["n_pairs"] == 16
    assert abs(onnx_m["auc"] - torch_m["auc"]) <= 1e-3


def test_eval_of_an_onnx_model_without_metadata_with_its_input_stated(cfg_factory, data_dir, mfn_weights, mfn_onnx,
                                                                      tmp_path):
    """The MobileFaceNet export with facematch's metadata stripped (as another project's model would come),
    its input stated as embed.input.*: PyTorch's figures."""
    import onnx

    from facematch.eval.job import evaluate

    proto = onnx.load(str(mfn_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    common = fp32_eval_args(data_dir, tmp_path)
    torch_m = evaluate(cfg_factory(*common, "arch=mobilefacenet", f"arch.weights={mfn_weights}", config_name="eval",
                                   out="pytorch"))
    stated = ["embed.input.size=[112,96]", "embed.input.mean=127.5", "embed.input.std=128",
              "embed.input.template=sphereface_112x96"]
    onnx_m = evaluate(cfg_factory(*common, f"onnx_path={bare}", *stated, config_name="eval", out="onnx"))
    assert onnx_m["model"]["input"]["size"] == [112, 96] and onnx_m["arch"] == "onnx-bare"
    assert onnx_m["preprocess"] == torch_m["preprocess"] and onnx_m["n_pairs"] == torch_m["n_pairs"] == 16
    assert abs(onnx_m["accuracy_mean"] - torch_m["accuracy_mean"]) <= 1e-4
    for key in ("auc", "val_at_far_1e-3"):
        assert abs(onnx_m[key] - torch_m[key]) <= 1e-4, key
