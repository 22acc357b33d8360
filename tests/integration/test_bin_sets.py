"""insightface validation files on real LFW crops: ``facematch-data pack-bin`` writes one, ``facematch-eval
data=bin`` on it gives exactly the figures of ``data=lfw_aligned112`` on the same pairs, a multirun over two sets
and two models renders as one benchmark table, raw photos are aligned before packing, and a hostile file is
one error line with nothing run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facematch.eval.job import evaluate
from tests.helpers import compose, error_line, mini_pairs, run_cli, tiny_pairs

QUIET = ["arch=mobilefacenet", "embed.num_workers=0", "embed.progress=false", "eval.tensorboard=false", "eval.tsne_identities=0",
         "protocol.n_folds=2"]


@pytest.fixture(scope="module")
def bins(tmp_path_factory, data_dir):
    """``(folder, pairs)``: 40 LFW pairs (2 folds) as ``lfw.bin`` (pack-bin from lfw-aligned-112) and as
    ``lfw_low.bin``, the same crops shrunk to 12 pixels and re-encoded (a second, harder set)."""
    from facematch.cli.data import main
    from facematch.data.bin_writer import write_bin
    from facematch.data.pair_files import read_pairs
    from facematch.data.source import source_from_config

    d = tmp_path_factory.mktemp("bins")
    pairs = mini_pairs(data_dir, d / "pairs.txt", per_fold=10)
    root = data_dir / "lfw-aligned-112"
    assert main(["pack-bin", str(root), str(pairs), str(d / "lfw.bin"), "--prealigned", "arcface_112x112",
                 "--no-progress"]) == 0
    low = source_from_config(root, "arcface_112x112", {"mode": "prealigned", "template": "arcface_112x112"},
                             degrade={"resolution": 12})
    r = write_bin(read_pairs(pairs), low, d / "lfw_low.bin", progress=False)
    assert r["encoded"] == r["distinct"] and r["images"] == 80
    return d, pairs


@pytest.fixture(scope="module")
def multirun(bins, mfn_weights):
    """What ``facematch-eval -m data=bin data.path=lfw.bin,lfw_low.bin arch.weights=W`` writes (jobs 0 and 1),
    run in process; the CLI's multirun is the one the docs' table comes from."""
    d, _ = bins
    out = d / "multirun"
    for k, name in enumerate(("lfw.bin", "lfw_low.bin")):
        evaluate(compose(["data=bin", f"data.path={d / name}", f"arch.weights={mfn_weights}",
                          f"embed.cache_dir={d / 'emb'}", f"eval.plots={k == 0}", *QUIET], out / str(k), "eval"))
    return out


def test_data_bin_gives_exactly_the_figures_of_the_folder(multirun, bins, data_dir, mfn_weights):
    d, pairs = bins
    m_bin = json.loads((multirun / "0" / "metrics.json").read_text())
    assert Path(m_bin["data"]["root"]).name == "lfw.bin" and m_bin["data"]["format"] == "bin"
    cfg = compose(["data=lfw_aligned112", f"data.root={data_dir / 'lfw-aligned-112'}", f"data.pairs={pairs}",
                   f"arch.weights={mfn_weights}", f"embed.cache_dir={d / 'emb'}", "eval.plots=false", *QUIET],
                  d / "folder", "eval")
    m_dir = evaluate(cfg)
    assert m_bin["n_pairs"] == m_dir["n_pairs"] == 40 and m_bin["n_images"] == m_dir["n_images"] < 80
    for key in ("fold_accuracies", "val_at_far_1e-3", "val_at_far_1e-2", "auc", "eer", "fold_thresholds"):
        assert m_bin[key] == m_dir[key], key
    assert 0.9 < m_bin["accuracy_mean"] <= 1.0 and len(m_bin["fold_accuracies"]) == 2
    # the job's other outputs: plots and per-pair scores (cosine and protocol score columns equal)
    assert (multirun / "0" / "roc.png").is_file()
    scores_bin = [line.split("\t")[2:] for line in (multirun / "0" / "pair_scores.tsv").read_text().splitlines()]
    scores_dir = [line.split("\t")[2:] for line in (d / "folder" / "pair_scores.tsv").read_text().splitlines()]
    assert scores_bin == scores_dir


def test_benchmark_table_over_two_sets_and_two_models(multirun, bins, tmp_path, capsys):
    from facematch.cli.report import main

    d, _ = bins
    for k, name in enumerate(("lfw.bin", "lfw_low.bin")):  # a second model: MobileFaceNet with random weights
        evaluate(compose(["data=bin", f"data.path={d / name}", f"embed.cache_dir={d / 'emb'}", "eval.plots=false",
                          "eval.identification=false", *QUIET], tmp_path / "random" / str(k), "eval"))
    capsys.readouterr()
    main([str(multirun), str(tmp_path / "random"), "--benchmark", "--tar-far", "1e-3", "--json", str(tmp_path / "t.json")])
    table = capsys.readouterr().out.splitlines()
    bench = json.loads((tmp_path / "t.json").read_text())
    assert table[2] == "| model | lfw | lfw_low |" and bench["sets"] == ["lfw", "lfw_low"]
    assert [r["model"] for r in bench["rows"]] == ["mobilefacenet (mobilefacenet_casia_068.ckpt)",
                                                   "mobilefacenet (random init)"]
    trained, rand = (r["cells"] for r in bench["rows"])
    assert trained["lfw"]["accuracy_mean"] > trained["lfw_low"]["accuracy_mean"]  # 12-pixel faces are harder
    assert trained["lfw"]["accuracy_mean"] > rand["lfw"]["accuracy_mean"]
    c = trained["lfw"]
    assert table[4].startswith(f"| mobilefacenet (mobilefacenet_casia_068.ckpt) | {100 * c['accuracy_mean']:.2f} ± "
                               f"{100 * c['accuracy_std']:.2f} / {100 * c['val_at_far_1e-3']:.2f} |")


def test_pack_bin_aligns_raw_photos_first(data_dir, lfw_root, tmp_path):
    from facematch.cli.data import main
    from facematch.data.bin_set import BinSet
    from facematch.faces.images import load_image_bytes

    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt", per_class=1)
    assert main(["pack-bin", str(lfw_root), str(pairs), str(tmp_path / "raw.bin"), "--cache-dir",
                 str(tmp_path / "aligned"), "--no-progress"]) == 0
    s = BinSet(tmp_path / "raw.bin")
    assert len(s.pairs) == 4 and [p[2] for p in s.pairs] == [True, False, True, False]
    img = load_image_bytes(s(s.pairs[0][0]), "crop")
    assert img.size == (112, 112) and s(s.pairs[0][0])[:2] == b"\xff\xd8"  # a JPEG of an aligned crop
    assert list((tmp_path / "aligned").iterdir())  # through the aligned-crop cache


def test_a_hostile_bin_is_one_error_line_and_nothing_runs(tmp_path, mfn_weights):
    import os
    import pickle

    marker = tmp_path / "ran"

    class Shell:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([b"x", Shell()], [True]), protocol=2))
    res = run_cli(["-m", "facematch.eval.job", "data=bin", f"data.path={path}", "arch=mobilefacenet", f"arch.weights={mfn_weights}",
                   f"hydra.run.dir={tmp_path / 'run'}"])
    line = error_line(res.stderr)
    assert res.returncode == 2 and "posix.system" in line and str(path) in line and not marker.exists()
