"""Sharded evaluation (facematch.eval.sharding): verify() over 2 CPU processes (gloo) gives exactly the
metrics of one process, each rank embedding about half of the distinct images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import mini_pairs

WORLD = 2
ENGINE = {"batch_size": 8, "num_workers": 0, "device": "cpu", "precision": "fp32", "runtime": "eager",
          "progress": False}


def _job(cfg_plain: dict, cache_dir: Path):
    """(model, pairs, source, protocol, engine) of the eval config, as facematch-eval builds them."""
    from omegaconf import OmegaConf

    from facematch.config import instantiate_node
    from facematch.data.pair_files import read_pairs
    from facematch.eval.inputs import eval_source
    from facematch.models.loading import load_model

    cfg = OmegaConf.create(cfg_plain)
    protocol = instantiate_node(cfg.protocol)
    model = load_model(None, cfg_plain["arch"], None)
    pairs = read_pairs(str(cfg.data.pairs), n_folds=int(protocol.n_folds))
    return model, pairs, eval_source(cfg, model.spec.template), protocol, {**ENGINE, "cache_dir": str(cache_dir)}


def _rank(rank: int, cfg_plain: dict, tmp: str) -> None:
    import torch.distributed as dist

    from facematch.eval.verification import verify

    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD)
    try:
        model, pairs, source, protocol, engine = _job(cfg_plain, Path(tmp) / "cache-sharded")
        res = verify(model, pairs, source, protocol, engine)
    finally:
        dist.destroy_process_group()
    with open(Path(tmp) / f"rank{rank}.pkl", "wb") as fh:
        pickle.dump({"report": res.report, "stats": res.embed_stats, "emb": res.emb, "paths": res.paths,
                     "ranked": res.ranked}, fh)


@pytest.mark.slow
def test_two_process_verify_equals_one_process(cfg_factory, data_dir, mfn_weights, tmp_path):
    import torch.multiprocessing as mp

    from facematch.config import to_container
    from facematch.eval.verification import verify

    pairs_file = mini_pairs(data_dir, tmp_path / "pairs.txt", per_fold=10)
    cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_aligned112",
                      f"data.pairs={pairs_file}", config_name="eval", out="eval")
    plain = to_container(cfg)

    model, pairs, source, protocol, engine = _job(plain, tmp_path / "cache-single")
    one = verify(model, pairs, source, protocol, engine)
    assert "per_rank" not in one.embed_stats and one.embed_stats["computed"] == len(one.paths)

    mp.spawn(_rank, args=(plain, str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]
    n = len(one.paths)
    for got in ranks:
        assert got["paths"] == one.paths
        np.testing.assert_array_equal(got["emb"], one.emb)
        assert got["report"] == one.report  # accuracy, fold accuracies, AUC, thresholds: exactly equal
        np.testing.assert_array_equal(got["ranked"], one.ranked)
        st = got["stats"]
        assert st["world_size"] == WORLD and st["computed"] == n and st["n_images"] == n
        shares = [r["computed"] for r in st["per_rank"]]
        assert sum(shares) == n and all(abs(s - n / WORLD) <= ENGINE["batch_size"] for s in shares), shares
    assert [r["stats"]["rank"] for r in ranks] == [0, 1]
