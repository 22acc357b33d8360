"""Fold-0 accuracy of the README's main job from the folder tree and from packed shards, same seed, same run.

    .venv/bin/python benchmarks/packed_accuracy.py [--packed DIR]   # writes benchmarks/results/packed_accuracy.json

1. ``facematch-data pack $FACEMATCH_DATA_DIR/lfw-aligned-112 DIR --prealigned arcface_112x112`` (the 7,701
   pairs.txt crops; kept and resumed if DIR already holds the pack), timed.
2. ``facematch-train arch=mobilefacenet arch.weights=... arch.freeze=true loss=triplet data=lfw_aligned112
   data.test_fold=0 trainer.max_epochs=1`` (the main job), then the same with ``data=packed data.root=DIR``,
   each in a fresh process with its own empty cache (so the packed run computes its features from the shards).

Done when the two fold-0 accuracies agree within 0.1 pt (the shards hold the files' bytes, so they are equal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.paths import data_dir, weights_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402


def train(work: Path, name: str, data: list[str]) -> dict:
    env = {**os.environ, "FACEMATCH_CACHE_DIR": str(work / name / "cache"), "FACEMATCH_OUTPUT_DIR": str(work / name / "out")}
    cmd = [sys.executable, "-m", "facematch.train", "arch=mobilefacenet",
           f"arch.weights={weights_dir() / 'mobilefacenet_casia_068.ckpt'}", "arch.freeze=true", "loss=triplet",
           *data, "data.test_fold=0", "trainer.max_epochs=1", f"hydra.run.dir={work / name / 'run'}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{name} failed:\n{r.stderr[-3000:]}")
    metrics = json.loads((work / name / "run" / "metrics.json").read_text())
    return {"command": " ".join(cmd[1:]), "wall_s": round(time.perf_counter() - t0, 1),
            "fold_0_accuracy": metrics["fold_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=None, help="pack folder (default: a temporary one)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "packed_accuracy.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-packed-acc-") as tmp:
        work = Path(tmp)
        packed = Path(args.packed) if args.packed else work / "lfw-aligned-112.packed"
        from facematch.data.pack import pack

        t0 = time.perf_counter()
        index = pack(data_dir() / "lfw-aligned-112", packed, prealigned="arcface_112x112", progress=False)
        pack_s = time.perf_counter() - t0
        folder = train(work, "folder", ["data=lfw_aligned112"])
        shards = train(work, "packed", ["data=packed", f"data.root={packed}"])
    diff_pt = 100 * abs(folder["fold_0_accuracy"] - shards["fold_0_accuracy"])
    res = {"machine": machine_info(), "pack": {"images": index["count"], "seconds": round(pack_s, 2),
                                                "parts_written": index["stats"]["parts_written"]},
           "folder": folder, "packed": shards, "difference_pt": round(diff_pt, 4), "within_0.1_pt": diff_pt <= 0.1}
    res["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    print(f"fold 0: folder {100 * folder['fold_0_accuracy']:.2f}% ({folder['wall_s']} s), packed "
          f"{100 * shards['fold_0_accuracy']:.2f}% ({shards['wall_s']} s); difference {diff_pt:.3f} pt; -> {args.out}")


if __name__ == "__main__":
    main()
