"""insightface validation files on synthetic inputs: the restricted unpickler (refused globals, truncated and
non-pickle files), the pairs and images a .bin serves, protocol=insightface against insightface's own rule,
the stated input of an ONNX model without metadata, and the benchmark table."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from facematch.errors import FacematchError, MalformedFileError, WeightsError
from facematch.data.bin_set import BinSet, load_bin


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write(path, obj, protocol: int = 4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Shell:
    """Pickles as a call of os.system (what a hostile .bin would hold)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_a_pickle_naming_any_other_global_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = write(tmp_path / "evil.bin", ([png(1), _Shell(marker)], [True]), protocol)
    with pytest.raises(MalformedFileError) as err:
        load_bin(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "system" in msg and "nothing was run" in msg
    assert not marker.exists()


def test_truncated_and_non_pickle_files_are_one_line(tmp_path):
    good = pickle.dumps(([png(1), png(2)], [True]), protocol=4)
    (tmp_path / "cut.bin").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.bin").write_text("Aaron_Peirsol 1 2\n")
    (tmp_path / "shape.bin").write_bytes(pickle.dumps(([png(1)], [True, False])))
    for name, words in (("cut.bin", "truncated"), ("text.bin", "not a pickle"),
                        ("shape.bin", "1 images for 2 pairs")):
        with pytest.raises(MalformedFileError) as err:
            load_bin(tmp_path / name)
        assert words in str(err.value) and "\n" not in str(err.value), name


def test_pairs_and_images_of_a_bin_numpy_images_included(tmp_path):
    a, b, c = png(10), png(20), png(30)
    arrays = [np.frombuffer(x, np.uint8) for x in (a, b, a, c)]  # some files hold numpy arrays of the bytes
    path = write(tmp_path / "set.bin", (arrays, np.array([True, False])))
    s = BinSet(path)
    # the repeated image is one name: read and embedded once
    assert s.pairs == [("00000", "00001", True), ("00000", "00003", False)] and s.rels == ["00000", "00001", "00003"]
    assert s("00003") == c and s.preprocess == {"mode": "prealigned", "template": "arcface_112x112"}
    assert len(s.content_digest) == 64


def test_a_bin_is_a_face_source_and_a_pairs_file(tmp_path):
    from facematch.data.pair_files import read_pairs, sniff_format
    from facematch.data.source import source_from_config

    path = write(tmp_path / "set.bin", ([png(v) for v in range(40)], [i % 2 == 0 for i in range(20)]))
    pairs = read_pairs(path, n_folds=10)
    assert sniff_format(path) == "bin" and len(pairs) == 20 and [p.fold for p in pairs[:4]] == [0, 0, 1, 1]
    src = source_from_config(path, "sphereface_112x96", {"mode": None, "template": None})
    assert src.key.startswith("prealigned-arcface_112x112-sphereface_112x96-bin") and src.stamp_root is None
    crop = src("00002")
    assert crop.shape == (112, 96, 3) and int(crop[50, 50, 0]) == 2


def insightface_fold_accuracies(e1, e2, issame, n_folds=10):
    """insightface's rule, restated: squared L2 of L2-normalised embeddings, predict same iff
    dist < t over np.arange(0, 4, 0.01), t = argmax of the training folds' accuracy, consecutive folds."""
    n1 = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    n2 = e2 / np.linalg.norm(e2, axis=1, keepdims=True)
    dist = np.sum(np.square(n1 - n2), 1)
    thresholds = np.arange(0, 4, 0.01)
    folds = np.array_split(np.arange(len(dist)), n_folds)
    accs = []
    for k, test in enumerate(folds):
        train = np.concatenate([f for i, f in enumerate(folds) if i != k])
        acc_train = [np.mean((dist[train] < t) == issame[train]) for t in thresholds]
        t = thresholds[int(np.argmax(acc_train))]
        accs.append(float(np.mean((dist[test] < t) == issame[test])))
    return accs


def test_protocol_insightface_gives_insightfaces_fold_accuracies(cfg_factory):
    from facematch.config import instantiate_node
    from facematch.eval import ten_fold

    p = instantiate_node(cfg_factory("protocol=insightface", config_name="eval").protocol)
    assert (p.flip, p.subtract_mean, p.distance, p.tie) == ("sum", False, "sq_l2", "first")
    rng = np.random.default_rng(0)
    same = rng.random(600) < 0.5
    e1 = rng.normal(size=(600, 16))
    e2 = np.where(same[:, None], e1 + rng.normal(scale=1.2, size=(600, 16)), rng.normal(size=(600, 16)))
    e2 = e2 * rng.uniform(0.5, 3, size=(600, 1))  # unnormalised: the protocol normalises
    folds = np.repeat(np.arange(10), 60)
    ours = ten_fold.ten_fold_verification(e1, e2, same, folds, p.distance, p.subtract_mean, p.score_thresholds(), p.tie)
    theirs = insightface_fold_accuracies(e1, e2, same)
    assert ours["fold_accuracies"] == theirs and 0.6 < np.mean(theirs) < 0.95
    # the default search (every split, middle of ties) is a different rule: it differs on these pairs
    default = ten_fold.ten_fold_verification(e1, e2, same, folds, "sq_l2", False)
    assert default["fold_accuracies"] != theirs


def test_bad_protocol_grid_and_tie_are_one_line():
    from facematch.eval.verification import Protocol

    with pytest.raises(FacematchError, match=r"threshold_grid=\[4.0, 0.0, 0.01\].*protocol.tie='last'"):
        Protocol(threshold_grid=(4, 0, 0.01), tie="last")


# ---------------------------------------------------------------------------------------------------
# ONNX without facematch metadata


def bare_onnx(path, h=4, w=4):
    """(N, 3, h, w) -> (N, 3): the mean of each input channel, with no facematch metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, h, w])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "D"])
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["out"])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_model_without_metadata_runs_with_the_stated_input(tmp_path):
    from facematch.models.onnx_file import load_onnx_model

    path = bare_onnx(tmp_path / "bare.onnx")
    with pytest.raises(WeightsError, match="has no facematch metadata: state its input: embed.input.size"):
        load_onnx_model(path)
    stated = {"size": 4, "mean": [104, 117, 123], "std": 127.5, "channels": "BGR", "template": "arcface_112x112"}
    m = load_onnx_model(path, stated)
    # mean in the model's (BGR) order -> the spec's RGB order on the 0..1 scale; D read by one run
    assert m.spec.input_size == (4, 4) and m.spec.embedding_dim == 3
    assert m.spec.mean == pytest.approx((123 / 255, 117 / 255, 104 / 255)) and m.spec.std == pytest.approx((0.5,) * 3)
    x = torch.arange(3, dtype=torch.float32).view(1, 3, 1, 1).expand(2, 3, 4, 4)  # R=0, G=1, B=2
    assert m.module(x).tolist() == [[2.0, 1.0, 0.0]] * 2  # the model sees B, G, R
    rgb = load_onnx_model(path, {**stated, "channels": "RGB"})
    assert rgb.module(x).tolist() == [[0.0, 1.0, 2.0]] * 2 and rgb.fingerprint != m.fingerprint
    for bad, words in (({**stated, "size": [5, 5]}, "stated size 5x5"), ({**stated, "std": 0}, "std > 0"),
                       ({**stated, "channels": "GBR"}, "RGB | BGR"), ({"size": 4}, "no input mean, std stated")):
        with pytest.raises(WeightsError, match=words):
            load_onnx_model(path, bad)


# ---------------------------------------------------------------------------------------------------
# the benchmark table


def run(model: str, root: str, acc: float, val: float = 0.9, folds: int = 10):
    cfg = {"arch": {"name": "mobilefacenet", "weights": f"/w/{model}.ckpt"}, "data": {"root": "${.path}"}}
    metrics = {"accuracy_mean": acc, "accuracy_std": 0.01, "fold_accuracies": [acc] * folds, "val_at_far_1e-3": val,
               "model": {"kind": "backbone", "arch": "mobilefacenet", "weights": f"/w/{model}.ckpt"},
               "data": {"root": root}, "protocol": {"flip": "concat", "distance": "cosine", "subtract_mean": True}}
    return cfg, metrics


def test_benchmark_table_has_a_row_per_model_and_a_column_per_set():
    from facematch.cli.benchmark_table import benchmark, markdown

    runs = [run("a", "/d/lfw.bin", 0.99), run("a", "/d/cfp_fp.bin", 0.9, 0.5), run("b", "/d/lfw.bin", 0.95)]
    bench = benchmark(runs, 1e-3)
    assert bench["sets"] == ["cfp_fp", "lfw"] and [r["model"] for r in bench["rows"]] == [
        "mobilefacenet (a.ckpt)", "mobilefacenet (b.ckpt)"]
    table = markdown(bench).splitlines()
    assert table[2] == "| model | cfp_fp | lfw |"
    assert table[4] == "| mobilefacenet (a.ckpt) | 90.00 ± 1.00 / 50.00 | 99.00 ± 1.00 / 90.00 |"
    assert table[5] == "| mobilefacenet (b.ckpt) | — | 95.00 ± 1.00 / 90.00 |"
    with pytest.raises(FacematchError, match="two runs of mobilefacenet \\(a.ckpt\\) on lfw"):
        benchmark(runs + [run("a", "/d/lfw.bin", 0.5)])
    with pytest.raises(FacematchError, match="no TAR at FAR=1e-2"):
        benchmark(runs, 1e-2)
