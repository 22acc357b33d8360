"""Two processes writing the other stores at once (docs/concurrency.md): a second ``facematch-data pack``
into a folder being packed stops with one line, an embedding-cache reader whose part was merged away by
another process meanwhile says nothing and keeps every vector, two ``prepare`` runs into one crop cache
both stay in its run history, and a checkpoint a training run saves while its calibration is added keeps
that save."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from PIL import Image

from facematch.data.pack import pack
from facematch.embedding.cache import EmbeddingCache
from facematch.errors import FacematchError
from facematch.data.shards import PACK_INDEX
from facematch.utils.locks import LOCK_NAME, folder_lock


def test_a_second_pack_into_one_folder_stops_with_one_line(tmp_path):
    src = tmp_path / "src" / "Ann_A"
    src.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "Ann_A_0001.png")
    out = tmp_path / "out"
    taken, release = threading.Event(), threading.Event()

    def other_pack():
        with folder_lock(out, timeout=0, what="other", fix=""):
            taken.set()
            release.wait(30)

    t = threading.Thread(target=other_pack)
    t.start()
    try:
        assert taken.wait(30)
        with pytest.raises(FacematchError) as e:
            pack(tmp_path / "src", out, prealigned="arcface_112x112", progress=False)
        msg = str(e.value)
        assert "\n" not in msg and f"{out} is locked by another process writing it ({out / LOCK_NAME} is held)" in msg
        assert "wait for the other `facematch-data pack` into it to finish" in msg
        assert not (out / PACK_INDEX).exists() and [f.name for f in out.iterdir()] == [LOCK_NAME]
    finally:
        release.set()
        t.join()
    index = pack(tmp_path / "src", out, prealigned="arcface_112x112", progress=False)  # the lock file is no content
    assert index["count"] == 1 and (out / PACK_INDEX).is_file()


def test_a_part_merged_away_meanwhile_is_skipped_silently(tmp_path, monkeypatch, caplog):
    cache = EmbeddingCache(tmp_path, "k")
    cache.add(["a.jpg"], np.ones((1, 4), np.float32))
    cache.add(["b.jpg"], np.full((1, 4), 2, np.float32))
    listed = cache.parts()
    other = EmbeddingCache(tmp_path, "k")
    other.merge()  # another process merges between this one listing the parts and reading them
    monkeypatch.setattr(cache, "parts", lambda: listed + other.parts())
    with caplog.at_level(logging.WARNING):
        got = cache.load()
    assert sorted(got) == ["a.jpg", "b.jpg"] and got["b.jpg"][0] == 2 and not caplog.records


def test_two_prepare_runs_finishing_at_once_both_stay_in_the_history(tmp_path, monkeypatch):
    """Each run reads the manifest's run history and writes it back with its own run appended; two runs
    that do so at once (the read held open here) both end up in it."""
    from facematch.faces import prepare as prep
    from facematch.faces.crop_cache import AlignedCache
    from facematch.faces.manifest import read_manifest

    (tmp_path / "src").mkdir()
    cache = AlignedCache(tmp_path / "out", "arcface_112x112", tmp_path / "src")
    cache.root.mkdir()
    real_read = prep.read_manifest

    def slow_read(folder):
        m = real_read(folder)
        time.sleep(0.3)  # the other run reads meanwhile, unless the lock keeps it out
        return m

    monkeypatch.setattr(prep, "read_manifest", slow_read)

    def run(made):
        prep.record_run(cache, {"updated": "now", "workers": 1, "elapsed_s": 1.0, "images_per_s": 1.0,
                                "counts": {"made_this_run": made}}, 5)

    threads = [threading.Thread(target=run, args=(made,)) for made in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["made"] for r in read_manifest(cache.root)["runs"]) == [1, 2]


def test_a_checkpoint_rewritten_while_its_calibration_is_added_is_kept(tmp_path, monkeypatch):
    """A training run saving the checkpoint between facematch-calibrate's read and its write: the training's
    save stays, and calibrate stops with one line instead of putting the older weights back."""
    import torch

    from facematch.models import weights
    from facematch.calibration.store import Calibration, write_into_checkpoint

    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "facematch": {}}, ckpt)
    real = weights.torch_load_weights

    def load_then_training_saves(path, *args):
        out = real(path, *args)
        time.sleep(0.01)
        torch.save({"state_dict": {"w": torch.ones(2)}, "facematch": {}}, ckpt)  # the newer epoch
        return out

    monkeypatch.setattr(weights, "torch_load_weights", load_then_training_saves)
    cal = Calibration("ab" * 32, {"far_1e-3": {"threshold": 0.4, "far": 1e-3, "tar": 0.9}}, "far_1e-3",
                      {"arch": "mobilefacenet", "flip": "concat"}, {"pairs": "pairs.txt"})
    with pytest.raises(FacematchError, match=r"last.ckpt was rewritten while its calibration was being added"):
        write_into_checkpoint(ckpt, cal)
    assert torch.equal(torch.load(ckpt, weights_only=True)["state_dict"]["w"], torch.ones(2))
