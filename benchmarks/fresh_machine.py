"""The README's first command on a fresh machine, against today's main job on the reference crops, one after
the other in one run:

    .venv/bin/python benchmarks/fresh_machine.py                  # all of LFW; writes benchmarks/results/fresh_machine.json
    .venv/bin/python benchmarks/fresh_machine.py --people 32      # a subset (its own 2-fold pairs.txt)

1. ``lfw_aligned112``: ``facematch-train arch=mobilefacenet arch.weights=$FACEMATCH_WEIGHTS_DIR/... data=lfw_aligned112
   data.test_fold=0 trainer.max_epochs=1`` on ``$FACEMATCH_DATA_DIR`` (the development machines' copy), with an
   empty cache: wall seconds and fold 0's accuracy.
2. ``lfw_photos_mtcnn``: the README's first command, verbatim, in a fresh copy of the working tree with an empty
   home and cache, facematch pointed at local servers standing in for figshare, UMass and GitHub
   (tests/mirrors.py; figshare serves a corrupted pairs.txt): ``uv sync`` from this machine's uv cache
   (UV_OFFLINE=1), then the fetch, the extraction, MTCNN alignment of every photo, features, one epoch, fold 0.
   Wall seconds of the whole command, of the fetch alone (its "fetched LFW ... in N s" line), and fold 0's accuracy.

The archive served is a tgz of ``$FACEMATCH_DATA_DIR/lfw/lfw-deepfunneled`` (made before the clock starts), so
its hash is given through FACEMATCH_FETCH_HASHES; the pairs files are the published ones (a subset gets its own
pairs.txt). A shared machine: the load average before each step is recorded beside it.
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
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from facematch.paths import data_dir, weights_dir  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402
from tests.mirrors import build_site, fresh_clone, fresh_env, mirror_env, readme_commands, run_command, serve, subset_pairs  # noqa: E402


def fold_0(run_root: Path) -> float:
    (metrics,) = run_root.glob("runs/train/*/metrics.json")
    return json.loads(metrics.read_text())["fold_accuracy"]


def reference(work: Path) -> dict:
    """Today's main job on the reference crops, empty cache."""
    cmd = [str(Path(sys.executable).parent / "facematch-train"), "arch=mobilefacenet",
           f"arch.weights={weights_dir() / 'mobilefacenet_casia_068.ckpt'}", "arch.freeze=true", "loss=triplet",
           "data=lfw_aligned112", "data.test_fold=0", "trainer.max_epochs=1"]
    env = {**os.environ, "FACEMATCH_DATA_DIR": str(data_dir().resolve()), "FACEMATCH_WEIGHTS_DIR": str(weights_dir().resolve()),
           "FACEMATCH_CACHE_DIR": str(work / "cache"), "FACEMATCH_OUTPUT_DIR": str(work / "outputs")}
    load, t0 = os.getloadavg(), time.perf_counter()
    r = subprocess.run(["nice", "-n", "10", *cmd], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"reference run failed:\n{r.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), "fold_0_accuracy": fold_0(work / "outputs"), "loadavg_before": [round(v, 2) for v in load],
            "holds": "training from the reference crops (no fetch, no alignment)",
            "command": "facematch-train " + " ".join(cmd[1:]).replace(str(weights_dir().resolve()), "$FACEMATCH_WEIGHTS_DIR")}


def fresh(work: Path, people: int | None, timeout_s: float) -> dict:
    """The README's first command from nothing, against local mirrors."""
    lfw = data_dir() / "lfw" / "lfw-deepfunneled"
    chosen, pairs = None, None
    if people:
        chosen = [p.name for p in sorted(lfw.iterdir()) if 3 <= len(list(p.glob("*.jpg"))) <= 5][:people]
        pairs = subset_pairs([chosen[:6], chosen[6:12]], lfw)
    print("building the mirrors' files ...", file=sys.stderr)
    site = build_site(work / "site", data_dir(), weights_dir(), chosen, pairs)
    clone = fresh_clone(work / "clone")
    main = readme_commands()[0]
    with serve({"figshare": site["figshare"], "umass": site["umass"]}) as servers:
        env = fresh_env(work / "home", mirror_env(servers, site["hashes"]))
        print("the README's first command ...", file=sys.stderr)
        load, t0 = os.getloadavg(), time.perf_counter()
        try:
            r = run_command(main, clone, env, timeout=timeout_s, nice=10)
        except subprocess.TimeoutExpired as err:  # stopped: how far the alignment got
            done = re.findall(r"align sphereface_112x96:.*?\| *(\d+)/(\d+) \[", err.stderr or "")
            return {"finished": False, "stopped_after_s": round(time.perf_counter() - t0, 1),
                    "aligned": [int(v) for v in done[-1]] if done else None, "people": people or "all",
                    "loadavg_before": [round(v, 2) for v in load], "command": main}
        wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"README command failed:\n{r.stderr[-3000:]}")
    fetched = re.search(r"fetched LFW .* in (\d+) s", r.stderr)
    return {"wall_s": round(wall, 1), "fold_0_accuracy": fold_0(clone / "outputs"),
            "fetch_s": float(fetched.group(1)) if fetched else None, "people": people or "all",
            "loadavg_before": [round(v, 2) for v in load],
            "holds": "uv sync from the uv cache, fetch + extract, MTCNN alignment of every photo, training", "finished": True,
            "command": main}


def seconds_until(hhmm: str | None) -> float:
    if not hhmm:
        return 3 * 3600
    now = time.gmtime()
    h, m = map(int, hhmm.split(":"))
    return max(60.0, (h * 3600 + m * 60) - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=None, help="a subset of this many people (default: all of LFW)")
    ap.add_argument("--stop-at", default=None, metavar="HH:MM",
                    help="stop the README command at this UTC time (how far its alignment got is recorded)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fresh_machine.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fm-fresh-") as tmp:
        print("today's main job on lfw_aligned112 ...", file=sys.stderr)
        ref = reference(Path(tmp) / "reference")
        new = fresh(Path(tmp) / "fresh", args.people, seconds_until(args.stop_at))
    subset = f", a {args.people}-person subset and its own 2-fold pairs.txt" if args.people else ", all of LFW"
    runs = {"lfw_aligned112 (reference crops, present)": ref,
            f"lfw_photos_mtcnn (fetched from local mirrors{subset})": new}
    payload = {"runs": runs, "machine": machine_info(), "wall_s": round(time.perf_counter() - t0, 1),
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "provenance": stamp("python " + " ".join(sys.argv), REPO)}  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    for name, run in runs.items():
        print(f"{name}: {json.dumps(run)}")
    return payload


if __name__ == "__main__":
    main()
