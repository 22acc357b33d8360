"""What fp32 costs: the full LFW evaluation of MobileFaceNet in each precision and runtime, one run each, one command.

    .venv/bin/python benchmarks/eval_precision.py      # writes benchmarks/results/eval_precision.json

``facematch-eval arch=mobilefacenet arch.weights=$FACEMATCH_WEIGHTS_DIR/mobilefacenet_casia_068.ckpt
data=lfw_aligned112`` (6,000 pairs, 7,701 images, flip test ``concat``), each run from an empty cache and in
its own output folder, one after the other in this process's run:

- ``fp32``: the command as it is (``embed.precision`` fp32 by default; ``embed.runtime=auto`` picks the
  fastest runtime that matches eager fp32 within 1e-4 cosine on the first batch, recorded as ``runtime``);
- ``bf16``: ``embed.precision=bf16`` (eager under autocast; native on a CPU with AVX512-BF16 / AMX);
- ``fp32_eager``, ``fp32_fused``, ``fp32_jit``: ``embed.runtime=`` each fp32 runtime, forced.

Per run: wall seconds of the command, the embedding seconds and images/s it records, the 10-fold accuracy and
each fold's, and ``pairs_decided_otherwise``: how many of the 6,000 pairs' decisions (``pair_scores.tsv``) differ
from ``fp32_eager``'s (the reference: eager fp32 is what every other path is checked against). The machine
(CPU model, flags, load averages before each run) is recorded; on a shared machine the seconds are indicative.
"""

from __future__ import annotations

import argparse
import csv
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

RUNS = {
    "fp32": [],
    "bf16": ["embed.precision=bf16"],
    "fp32_eager": ["embed.runtime=eager"],
    "fp32_fused": ["embed.runtime=fused"],
    "fp32_jit": ["embed.runtime=jit"],
}
REFERENCE = "fp32_eager"


def command() -> list[str]:
    weights = weights_dir().resolve() / "mobilefacenet_casia_068.ckpt"
    return [str(Path(sys.executable).parent / "facematch-eval"), "arch=mobilefacenet", f"arch.weights={weights}",
            "data=lfw_aligned112"]


def run_one(name: str, extra: list[str], work: Path) -> dict:
    env = {**os.environ, "FACEMATCH_DATA_DIR": str(data_dir().resolve()),
           "FACEMATCH_WEIGHTS_DIR": str(weights_dir().resolve()),
           "FACEMATCH_CACHE_DIR": str(work / f"cache_{name}")}  # empty: every image embedded
    out = work / name
    load = os.getloadavg()
    t0 = time.perf_counter()
    r = subprocess.run([*command(), *extra, f"hydra.run.dir={out}"], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{name} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    with open(out / "pair_scores.tsv") as fh:
        decisions = [int(row["decision"]) for row in csv.DictReader(fh, delimiter="\t")]
    cache = m["embedding_cache"]
    assert cache["computed"] == m["n_images"], f"{name}: {cache['computed']} of {m['n_images']} images embedded"
    return {"overrides": extra, "precision": m["precision"], "runtime": m["runtime"], "wall_s": round(wall, 1),
            "embed_s": round(m["timings"]["embed_s"], 1), "images_per_s": round(cache["images_per_s"], 1),
            "n_images": m["n_images"], "n_pairs": m["n_pairs"], "accuracy_mean": m["accuracy_mean"],
            "accuracy_std": m["accuracy_std"], "fold_accuracies": m["fold_accuracies"],
            "loadavg_before": [round(v, 2) for v in load], "_decisions": decisions}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "eval_precision.json"))
    args = ap.parse_args(argv)
    if REFERENCE not in args.runs:
        ap.error(f"--runs needs {REFERENCE}: the decisions are compared with its")
    t0 = time.perf_counter()
    runs: dict = {}
    with tempfile.TemporaryDirectory(prefix="fm-eval-precision-") as tmp:
        for name in args.runs:
            print(f"{name} ...", file=sys.stderr, flush=True)
            runs[name] = run_one(name, RUNS[name], Path(tmp))
            r = runs[name]
            print(f"  {r['precision']} {r['runtime']}: {r['wall_s']:.1f} s wall, {r['images_per_s']:.1f} images/s, "
                  f"10-fold {100 * r['accuracy_mean']:.2f}%", file=sys.stderr, flush=True)
    ref = runs[REFERENCE]["_decisions"]
    for r in runs.values():
        decisions = r.pop("_decisions")
        r["pairs_decided_otherwise"] = sum(a != b for a, b in zip(decisions, ref))
        r["fold_accuracies_pct"] = " ".join(f"{100 * a:.2f}" for a in r["fold_accuracies"])
    n_folds = len(runs[REFERENCE]["fold_accuracies"])
    folds = [{"fold": k + 1, **{name: r["fold_accuracies"][k] for name, r in runs.items()}} for k in range(n_folds)]
    shown = "facematch-eval arch=mobilefacenet arch.weights=$FACEMATCH_WEIGHTS_DIR/mobilefacenet_casia_068.ckpt " \
            "data=lfw_aligned112"  # what command() runs, without this machine's paths
    payload = {"command": shown, "reference": REFERENCE, "runs": runs,
               "folds": folds, "machine": {**machine_info(), "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
               "wall_s": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "provenance": stamp("python " + " ".join(sys.argv))}  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    for name, r in runs.items():
        print(f"{name:11s} {r['precision']} {r['runtime']:6s} {r['wall_s']:7.1f} s  {100 * r['accuracy_mean']:.2f}% "
              f"± {100 * r['accuracy_std']:.2f}  folds {r['fold_accuracies_pct']}  "
              f"decided otherwise than {REFERENCE}: {r['pairs_decided_otherwise']}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
