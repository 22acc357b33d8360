"""The README's main command from an empty cache, against a plain fp32 loop that only embeds the same crops.

    .venv/bin/python benchmarks/main_job.py                       # writes benchmarks/results/main_job.json
    .venv/bin/python benchmarks/main_job.py --allocator-off       # also the main command with FACEMATCH_MALLOC=0

Same run, one after the other:

1. ``main``: ``facematch-train arch=mobilefacenet ... data=lfw_aligned112 data.test_fold=0 trainer.max_epochs=1``
   (the README's main command) in a fresh cache and output folder, under ``/usr/bin/time -v``: wall, user and
   system seconds, minor page faults, peak memory, and fold 0's accuracy.
2. ``plain_loop``: a new process that decodes the crops that run embedded (read back from its embedding
   cache), then times only a plain loop: MobileFaceNet with the same weights, eager NCHW fp32,
   ``torch.no_grad``, batch 128, each crop and its mirror (2 views), the allocator settings on.
3. ``main_allocator_off`` (``--allocator-off``): step 1 with ``FACEMATCH_MALLOC=0`` and no ``MALLOC_*`` variables.

``main_vs_loop`` = plain-loop seconds / main-command wall seconds (above 1: the whole job beats the loop).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

TIME_FIELDS = {
    "wall_s": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.+)",
    "user_s": r"User time \(seconds\): ([\d.]+)",
    "sys_s": r"System time \(seconds\): ([\d.]+)",
    "minor_faults": r"Minor \(reclaiming a frame\) page faults: (\d+)",
    "max_rss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
}

PLAIN_LOOP = r"""
import json, sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from facematch.utils.allocator import tune; tune()  # allocator settings
from facematch.data.source import FaceSource
from facematch.models.backbones import build_backbone
rels = json.loads(open(sys.argv[2]).read())
src = FaceSource(sys.argv[3], "sphereface_112x96", mode="prealigned", src_template="arcface_112x112")
crops = np.stack([src(r) for r in rels])
net = build_backbone("mobilefacenet", weights=sys.argv[4]).eval()
x_all = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.5) / 128.0
t0 = time.perf_counter()
with torch.no_grad():
    for i in range(0, len(x_all), 128):
        x = x_all[i:i + 128]
        net(x); net(x.flip(3))
s = time.perf_counter() - t0
print(json.dumps({"seconds": s, "images": len(rels), "views": 2 * len(rels), "images_per_s": 2 * len(rels) / s}))
"""


def parse_time(text: str) -> dict:
    out = {}
    for k, pat in TIME_FIELDS.items():
        m = re.search(pat, text)
        if not m:
            continue
        v = m.group(1).strip()
        if k == "wall_s":
            parts = [float(p) for p in v.split(":")]
            out[k] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
        else:
            out[k] = float(v)
    out["sys_over_user"] = round(out["sys_s"] / out["user_s"], 3) if out.get("user_s") else None
    return out


def run_main(work: Path, env_extra: dict, drop_malloc_env: bool) -> dict:
    env = {**os.environ, "FACEMATCH_DATA_DIR": str(data_dir()), "FACEMATCH_WEIGHTS_DIR": str(weights_dir()),
           "FACEMATCH_CACHE_DIR": str(work / "cache"), "FACEMATCH_OUTPUT_DIR": str(work / "outputs"), **env_extra}
    if drop_malloc_env:
        env = {k: v for k, v in env.items() if not k.startswith("MALLOC_")}
    weights = weights_dir() / "mobilefacenet_casia_068.ckpt"
    cmd = ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "facematch-train"), "arch=mobilefacenet",
           f"arch.weights={weights}", "arch.freeze=true", "loss=triplet", "data=lfw_aligned112", "data.test_fold=0",
           "trainer.max_epochs=1", f"hydra.run.dir={work / 'run'}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"main command failed ({r.returncode}):\n{r.stderr[-3000:]}")
    res = parse_time(r.stderr)
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    res["fold_0_accuracy"] = metrics["fold_accuracy"]
    res["command"] = " ".join(cmd[2:])
    return res


def embedded_paths(cache: Path) -> list[str]:
    import numpy as np

    paths: list[str] = []
    for part in sorted((cache / "embeddings").glob("*/part-*.npz")):
        with np.load(part, allow_pickle=False) as z:
            paths += z["paths"].tolist()
    return sorted(set(paths))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allocator-off", action="store_true", help="also run the main command with FACEMATCH_MALLOC=0")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "main_job.json"))
    args = ap.parse_args(argv)
    t0, load = time.perf_counter(), os.getloadavg()
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="fm-main-job-") as tmp:
        work = Path(tmp) / "main"
        print("main command (empty cache) ...", file=sys.stderr)
        result["main"] = run_main(work, {}, drop_malloc_env=False)
        rels = embedded_paths(work / "cache")
        listing = Path(tmp) / "rels.json"
        listing.write_text(json.dumps(rels))
        print(f"plain loop over the same {len(rels)} crops x 2 views ...", file=sys.stderr)
        r = subprocess.run([sys.executable, "-c", PLAIN_LOOP, str(REPO / "src"), str(listing),
                            str(data_dir() / "lfw-aligned-112"), str(weights_dir() / "mobilefacenet_casia_068.ckpt")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"plain loop failed:\n{r.stderr[-3000:]}")
        result["plain_loop"] = json.loads(r.stdout.strip().splitlines()[-1])
        if args.allocator_off:
            print("main command, allocator settings off ...", file=sys.stderr)
            result["main_allocator_off"] = run_main(Path(tmp) / "off", {"FACEMATCH_MALLOC": "0"}, drop_malloc_env=True)
    result["main_vs_loop"] = round(result["plain_loop"]["seconds"] / result["main"]["wall_s"], 3)
    payload = {**result, "machine": {**machine_info(), "loadavg_before": [round(v, 2) for v in load]},
               "wall_s": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    m, p = result["main"], result["plain_loop"]
    print(f"main command: {m['wall_s']:.1f} s wall, user {m['user_s']:.1f} s, sys {m['sys_s']:.1f} s "
          f"({100 * m['sys_over_user']:.1f}% of user), {m['minor_faults']:.0f} minor faults, fold 0 "
          f"{100 * m['fold_0_accuracy']:.2f}%", file=sys.stderr)
    print(f"plain loop: {p['seconds']:.1f} s for {p['views']} views ({p['images_per_s']:.1f}/s); "
          f"loop / main = {result['main_vs_loop']:.3f}", file=sys.stderr)
    if "main_allocator_off" in result:
        o = result["main_allocator_off"]
        print(f"allocator off: {o['wall_s']:.1f} s wall, user {o['user_s']:.1f} s, sys {o['sys_s']:.1f} s, "
              f"{o['minor_faults']:.0f} minor faults", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
