"""facematch-eval on one-side-degraded pairs (data.degrade.side=second) and on XQLFW as released (data=xqlfw),
read from a small folder made in XQLFW's layout out of the LFW reference crops (XQLFW itself is not here)."""

from __future__ import annotations

import shutil

import pytest

from facematch.data.pair_files import read_pairs
from facematch.errors import FacematchError
from facematch.eval.job import evaluate
from tests.helpers import tiny_pairs

QUIET = ("embed.num_workers=0", "embed.progress=false", "eval.plots=false", "eval.tensorboard=false",
         "eval.identification=false")


@pytest.fixture
def mfn_args(mfn_weights, tmp_path):
    return ["arch=mobilefacenet", f"arch.weights={mfn_weights}", f"embed.cache_dir={tmp_path / 'emb'}", *QUIET]


def test_one_side_degraded_beside_symmetric_and_undegraded(cfg_factory, data_dir, mfn_args, tmp_path):
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    lfw = [*mfn_args, "data=lfw_aligned112", f"data.root={data_dir / 'lfw-aligned-112'}", f"data.pairs={pairs}"]
    cross = evaluate(cfg_factory(*lfw, "data.degrade.resolution=16", "data.degrade.side=second",
                                 config_name="eval", out="cross"))
    both = evaluate(cfg_factory(*lfw, "data.degrade.resolution=16", config_name="eval", out="both"))
    clean = evaluate(cfg_factory(*lfw, config_name="eval", out="clean"))
    assert cross["accuracy_mean"] == cross["cross_accuracy_mean"]
    assert cross["symmetric_accuracy_mean"] == both["accuracy_mean"]  # the same job, both sides degraded
    assert cross["undegraded_accuracy_mean"] == clean["accuracy_mean"]
    assert cross["cross_quality"]["degraded"].startswith("the second image of each pair")
    assert "cross_accuracy_mean" not in both and cross["n_pairs"] == 16


def _xqlfw_folder(data_dir, root, pairs_file):
    """XQLFW's layout: xqlfw/xqlfw_pairs.txt (LFW pairs.txt format) and xqlfw/xqlfw_aligned_112/NAME/NAME_000N.jpg."""
    folder = root / "xqlfw"
    (folder / "xqlfw_aligned_112").mkdir(parents=True)
    shutil.copyfile(pairs_file, folder / "xqlfw_pairs.txt")
    for p in read_pairs(pairs_file):
        for rel in (p.a, p.b):
            dest = folder / "xqlfw_aligned_112" / rel
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(data_dir / "lfw-aligned-112" / rel, dest)
    return folder


def test_xqlfw_as_released_is_read(cfg_factory, data_dir, mfn_args, tmp_path, monkeypatch):
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    users_data = tmp_path / "data"
    folder = _xqlfw_folder(data_dir, users_data, pairs)
    reference = evaluate(cfg_factory(*mfn_args, "data=lfw_aligned112", f"data.root={data_dir / 'lfw-aligned-112'}",
                                     f"data.pairs={pairs}", config_name="eval", out="lfw"))
    monkeypatch.setenv("FACEMATCH_DATA_DIR", str(users_data))  # data=xqlfw's default paths, as a user has them
    m = evaluate(cfg_factory(*mfn_args, "data=xqlfw", config_name="eval", out="xqlfw"))
    assert m["data"]["root"] == str(folder / "xqlfw_aligned_112") and m["data"]["format"] == "lfw"
    assert m["n_pairs"] == 16 and m["n_images"] == reference["n_images"]
    # the same crops under XQLFW's names: the same figures (and the embeddings from the cache)
    assert m["accuracy_mean"] == reference["accuracy_mean"] and m["auc"] == reference["auc"]


def test_xqlfw_missing_is_one_line(cfg_factory, mfn_args, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEMATCH_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FacematchError, match=r"XQLFW not found: no .*xqlfw_aligned_112\. facematch does not fetch it"):
        evaluate(cfg_factory(*mfn_args, "data=xqlfw", config_name="eval", out="missing"))


def test_one_side_without_a_degradation_is_one_line(cfg_factory, data_dir, mfn_args, tmp_path):
    pairs = tiny_pairs(data_dir, tmp_path / "pairs.txt")
    with pytest.raises(FacematchError, match=r"data.degrade.side=second .* data.degrade changes nothing"):
        evaluate(cfg_factory(*mfn_args, "data=lfw_aligned112", f"data.root={data_dir / 'lfw-aligned-112'}",
                             f"data.pairs={pairs}", "data.degrade.side=second", config_name="eval", out="none"))
