"""The glibc malloc settings on and off: a plain forward loop per backbone, in fresh processes, paired.

    .venv/bin/python benchmarks/allocator.py                      # writes benchmarks/results/allocator.json
    .venv/bin/python benchmarks/allocator.py --backbones mobilefacenet --seconds 10 --pairs 3

Each pair runs the same loop twice, in a new process each, alternating the order: ``import facematch``
with ``FACEMATCH_MALLOC=1`` (the default) and with ``FACEMATCH_MALLOC=0`` (no ``MALLOC_*`` variables
inherited). The loop: ``backbone(x)`` under ``torch.no_grad``, fp32, batch ``--batch-size`` of random
input, for ``--seconds`` after one warm-up batch. Reported per setting: images/s, user and system CPU
seconds, minor page faults (``getrusage``), medians over the pairs; ``speedup`` = on / off images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.utils.allocator import SETTINGS  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402

LOOP = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import facematch, torch
from facematch.models.backbones import build_backbone
from facematch.utils import allocator
net = build_backbone(sys.argv[2]).eval()
h, w = net.spec.input_size
x = torch.randn(int(sys.argv[3]), 3, h, w)
r0 = resource.getrusage(resource.RUSAGE_SELF)
with torch.no_grad():
    net(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < float(sys.argv[4]):
        net(x)
        n += x.shape[0]
    s = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"images_per_s": n / s, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "minor_faults": r1.ru_minflt - r0.ru_minflt, "applied": allocator.tune()["applied"]}))
"""


def one(backbone: str, on: bool, batch: int, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["FACEMATCH_MALLOC"] = "1" if on else "0"
    r = subprocess.run([sys.executable, "-c", LOOP, str(REPO / "src"), backbone, str(batch), str(seconds)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["mobilefacenet", "inception_resnet_v1", "resnet50"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "allocator.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {}
    for name in args.backbones:
        runs: dict[str, list[dict]] = {"on": [], "off": []}
        for i in range(args.pairs):
            for setting in (("on", "off") if i % 2 == 0 else ("off", "on")):
                print(f"{name}: pair {i + 1}, allocator {setting}", file=sys.stderr)
                runs[setting].append(one(name, setting == "on", args.batch_size, args.seconds))
        med = {s: {k: round(float(np.median([r[k] for r in rs])), 2) for k in ("images_per_s", "user_s", "sys_s",
                                                                                 "minor_faults")}
               for s, rs in runs.items()}
        out[name] = {**med, "speedup": round(med["on"]["images_per_s"] / med["off"]["images_per_s"], 3),
                     "applied": {s: [r["applied"] for r in rs] for s, rs in runs.items()}}
    payload = {"backbones": out, "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "malloc_settings": {k: v for k, (_, v) in SETTINGS.items()}, "machine": machine_info(),
               "wall_s": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    for name, d in out.items():
        print(f"{name}: on {d['on']['images_per_s']:.1f} img/s (user {d['on']['user_s']:.1f} s, sys {d['on']['sys_s']:.1f} s, "
              f"{d['on']['minor_faults']:.0f} faults); off {d['off']['images_per_s']:.1f} img/s (user "
              f"{d['off']['user_s']:.1f} s, sys {d['off']['sys_s']:.1f} s, {d['off']['minor_faults']:.0f} faults); "
              f"x{d['speedup']:.2f}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
