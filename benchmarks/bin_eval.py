"""``facematch-eval data=bin`` on LFW as an insightface ``lfw.bin`` against ``data=lfw_aligned112`` on the same
images, interleaved in one run.

    nice -n 5 .venv/bin/python benchmarks/bin_eval.py [--rounds 2]   # writes benchmarks/results/bin_eval.json

1. ``lfw.bin`` is written once from ``lfw-aligned-112`` and LFW's ``pairs.txt`` (``facematch-data pack-bin
   --prealigned arcface_112x112``: 6,000 pairs, 12,000 images, the folder's files as they are), into
   ``--work`` (default ``$FACEMATCH_CACHE_DIR/bench``); timed when made.
2. ``facematch-eval`` (MobileFaceNet, CASIA weights, the default protocol and engine) runs in a fresh process
   per run, alternating ``data=bin`` and ``data=lfw_aligned112`` (A B A B ...), ``--rounds`` times each. Both run
   cold: ``embed.cache=false`` (every image decoded and embedded each run); plots, TensorBoard and
   identification off in both (the job is the same; only the image source and pairs reader differ).
3. Per source: wall time of the command (process start included) and its own ``seconds`` and ``embed_s``,
   peak resident memory of the process, medians over the rounds; ``ratio`` = bin / folder (below 1: the .bin is
   faster). The figures of the two must be identical (checked; a difference stops the benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.paths import cache_dir, data_dir, weights_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402

SAME = ("fold_accuracies", "auc", "val_at_far_1e-3", "val_at_far_1e-2")


def make_bin(path: Path) -> dict:
    from facematch.cli.data import main

    t0 = time.perf_counter()
    rc = main(["pack-bin", str(data_dir() / "lfw-aligned-112"), str(data_dir() / "lfw" / "pairs.txt"), str(path),
               "--prealigned", "arcface_112x112", "--no-progress"])
    if rc:
        raise SystemExit(rc)
    return {"seconds": round(time.perf_counter() - t0, 2), "bytes": path.stat().st_size}


def one(data: list[str], out: Path) -> dict:
    weights = weights_dir() / "mobilefacenet_casia_068.ckpt"
    cmd = [sys.executable, "-m", "facematch.eval.job", "arch=mobilefacenet", f"arch.weights={weights}", *data,
           "embed.cache=false", "embed.progress=false", "eval.plots=false", "eval.tensorboard=false",
           "eval.identification=false", f"hydra.run.dir={out}"]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stderr.txt"
    t0 = time.perf_counter()
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak memory
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(log.read_text()[-2000:])
    m = json.loads((out / "metrics.json").read_text())
    return {"wall_s": wall, "seconds": m["seconds"], "embed_s": m["timings"]["embed_s"], "n_images": m["n_images"],
            "n_pairs": m["n_pairs"], "peak_rss_mb": usage.ru_maxrss / 1024, "precision": m["precision"],
            **{k: m[k] for k in SAME}, "accuracy_mean": m["accuracy_mean"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=cache_dir() / "bench")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bin_eval.json"))
    ap.add_argument("--note", default="", help="how the machine was (quiet, shared with other jobs, niced)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "lfw.bin"
    made = make_bin(path) if not path.is_file() else None
    sources = {"bin": ["data=bin", f"data.path={path}"],
               "folder": ["data=lfw_aligned112", f"data.root={data_dir() / 'lfw-aligned-112'}",
                          f"data.pairs={data_dir() / 'lfw' / 'pairs.txt'}"]}
    runs: dict[str, list[dict]] = {k: [] for k in sources}
    for i in range(args.rounds):
        for name in (("bin", "folder") if i % 2 == 0 else ("folder", "bin")):
            print(f"round {i + 1}: data={name}", file=sys.stderr, flush=True)
            runs[name].append(one(sources[name], args.work / f"run-{name}-{i}"))
    first = {k: v[0] for k, v in runs.items()}
    for key in SAME:
        if first["bin"][key] != first["folder"][key]:
            raise SystemExit(f"{key} differs: bin {first['bin'][key]} vs folder {first['folder'][key]}")
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "seconds", "embed_s", "peak_rss_mb")}
           for k, v in runs.items()}
    result = {
        "machine": machine_info(),
        "note": "; ".join(filter(None, [args.note, "both sources cold (embed.cache=false)"])),
        "command": " ".join(["python", "benchmarks/bin_eval.py", *(argv if argv is not None else sys.argv[1:])]),
        "bin_file": {"pairs": first["bin"]["n_pairs"], "images_in_file": 2 * first["bin"]["n_pairs"],
                     "images_embedded": first["bin"]["n_images"], **({"made": made} if made else {})},
        "identical_figures": {k: first["bin"][k] for k in ("accuracy_mean", "auc")},
        "median": med,
        "ratio_bin_over_folder": {m: med["bin"][m] / med["folder"][m] for m in ("wall_s", "seconds", "embed_s", "peak_rss_mb")},
        "runs": runs,
    }
    result["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({"median": med, "ratio": result["ratio_bin_over_folder"]}, indent=2))
    return result


if __name__ == "__main__":
    main()
