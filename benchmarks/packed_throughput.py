"""Packing time, and training data throughput from packed shards against the folder tree, same run.

    .venv/bin/python benchmarks/packed_throughput.py [--rounds 3] [--batches 30] [--workers 2]
    # writes benchmarks/results/packed_throughput.json

1. ``facematch-data pack`` of raw LFW (``lfw/lfw-deepfunneled``, 13,233 photos) and of ``lfw-aligned-112``
   (7,701 crops, ``--prealigned arcface_112x112``) into temporary folders, timed (files read cold or warm as
   the page cache has them: the folder tree is read first by whatever ran before).
2. For each set, images/s delivered to the model: the DataModule's training loader exactly as training
   builds it (``loss=triplet miner=batch_hard``: P x K batches of 16 x 4 from ``PKBatchSampler``, decoding,
   preprocessing (centre crop / template conversion), augmentation, collation, ``data.num_workers`` worker
   processes started per epoch), over one epoch of ``--batches`` batches, from the folder tree and from the
   shards, alternating, ``--rounds`` times each; the median of each and their ratio (shards / folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.paths import data_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402


def datamodule(data: list[str], batches: int, workers: int, out: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from facematch.config import config_dir
    from facematch.train import build

    overrides = ["arch=mobilefacenet", "loss=triplet", "miner=batch_hard", *data, "data.features.enabled=false",
                 f"data.num_workers={workers}", "data.pk.p=16", "data.pk.k=4", f"data.train_samples={64 * batches}",
                 "data.val_pairs=16", f"hydra.run.dir={out}"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    _, dm = build(cfg)
    dm.setup("fit")
    return dm


def epoch_rate(dm) -> float:
    """Images/s of one training epoch of the loader: worker start-up included, as in training."""
    n, t0 = 0, time.perf_counter()
    for x, *_ in dm.train_dataloader():
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=30, help="P x K batches (64 images) per measured epoch")
    ap.add_argument("--workers", type=int, default=2, help="data.num_workers (default 2, conf/data/lfw.yaml's)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "packed_throughput.json"))
    args = ap.parse_args()
    from facematch.data.pack import pack

    sets = {"lfw_raw": (data_dir() / "lfw" / "lfw-deepfunneled", None, "data=lfw_photos"),
            "lfw_aligned_112": (data_dir() / "lfw-aligned-112", "arcface_112x112", "data=lfw_aligned112")}
    res = {"machine": machine_info(), "settings": vars(args), "sets": {}}
    with tempfile.TemporaryDirectory(prefix="fm-packed-tp-") as tmp:
        for name, (src, prealigned, data) in sets.items():
            out = Path(tmp) / name
            t0 = time.perf_counter()
            index = pack(src, out, prealigned=prealigned, progress=False)
            pack_s = time.perf_counter() - t0
            size = sum(r["bytes"] for p in index["parts"] for r in p["files"].values())
            folder = datamodule([data], args.batches, args.workers, Path(tmp) / "run")
            shards = datamodule([data.replace(data.split("=")[1], "packed"), f"data.root={out}"], args.batches,
                                args.workers, Path(tmp) / "run")
            assert folder.train_set.targets == shards.train_set.targets  # the same items, the same batches
            rates = {"folder": [], "packed": []}
            for _ in range(args.rounds):
                for kind, dm in (("folder", folder), ("packed", shards)):
                    rates[kind].append(round(epoch_rate(dm), 1))
            med = {k: statistics.median(v) for k, v in rates.items()}
            res["sets"][name] = {
                "src": str(src), "images": index["count"], "pack_seconds": round(pack_s, 2),
                "pack_images_per_s": round(index["count"] / pack_s, 1), "packed_mb": round(size / 1e6, 1),
                "parts": len(index["parts"]), "images_per_s": rates, "median_images_per_s": med,
                "ratio_packed_over_folder": round(med["packed"] / med["folder"], 3),
            }
            r = res["sets"][name]
            print(f"{name}: pack {r['images']} images in {r['pack_seconds']} s ({r['packed_mb']} MB); loader "
                  f"folder {med['folder']:.0f} img/s, packed {med['packed']:.0f} img/s, ratio "
                  f"{r['ratio_packed_over_folder']}", file=sys.stderr)
    res["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
