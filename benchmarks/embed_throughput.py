"""Embedding throughput on this machine: images/s per backbone, fp32 vs bf16, against a plain facenet-pytorch loop.

    .venv/bin/python benchmarks/embed_throughput.py                 # writes benchmarks/results/embed_throughput.json
    .venv/bin/python benchmarks/embed_throughput.py --seconds 10 --batch-size 128 --out /tmp/bench.json

What is measured: the model path of :class:`facematch.eval.embed.Embedder` (``forward_uint8``): a
pre-decoded uint8 NHWC batch -> normalisation -> ``channels_last`` -> optional bf16 autocast -> backbone ->
float32 features, under ``torch.inference_mode``; no file decoding, no alignment, no flip test (flip
doubles the work per image), random weights (speed does not depend on their values). Each configuration
runs one warm-up batch, then whole batches until ``--seconds`` have passed (at least ``--min-batches``).

Baseline, measured in the same run (before and after the others, to expose drift on a shared machine): a
plain Python loop calling facenet-pytorch's ``InceptionResnetV1().eval()`` on pre-normalised float
batches of 32 at 160x160 under ``torch.no_grad()``, fp32, default memory format. ``ratio_vs_baseline`` is
images/s divided by the mean of the two baseline measurements. The JSON records the machine (CPU model,
torch threads, load average before and after) because on a shared CPU the absolute numbers move with load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.eval.embed import Embedder  # noqa: E402
from facematch.models.backbones import build_backbone  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402

BACKBONES = ("mobilefacenet", "inception_resnet_v1", "resnet50")


def timed(step, batch: int, seconds: float, min_batches: int) -> dict:
    step()  # warm-up (allocations, oneDNN primitive creation)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= min_batches and elapsed >= seconds:
            break
    return {"images_per_s": round(n * batch / elapsed, 2), "batches": n, "batch_size": batch,
            "seconds": round(elapsed, 3), "ms_per_batch": round(1000 * elapsed / n, 2)}


def baseline(seconds: float, min_batches: int) -> dict:
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1().eval()  # pretrained=None: random weights, no download
    x = (torch.randint(0, 256, (32, 3, 160, 160)).float() - 127.5) / 128.0

    def step():
        with torch.no_grad():
            model(x)

    return timed(step, 32, seconds, min_batches)


def embedder_path(name: str, bf16: bool, batch: int, seconds: float, min_batches: int, channels_last: bool) -> dict:
    backbone = build_backbone(name).eval()
    h, w = backbone.spec.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    emb = Embedder(backbone, backbone.spec, flip="none", bf16=bf16, channels_last=channels_last, progress=False)
    return timed(lambda: emb.forward_uint8(crops), batch, seconds, min_batches)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    ap.add_argument("--batch-size", type=int, default=32, help="Embedder batch size (default 32, as the baseline)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per configuration")
    ap.add_argument("--min-batches", type=int, default=3)
    ap.add_argument("--no-channels-last", action="store_true", help="measure the Embedder path without channels_last")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed_throughput.json"))
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    channels_last = not args.no_channels_last
    results: dict = {"baseline": {}, "embedder": {}}
    print(f"baseline: facenet-pytorch InceptionResnetV1 plain loop, batch 32, fp32 ...", file=sys.stderr)
    first = baseline(args.seconds, args.min_batches)
    for name in args.backbones:
        results["embedder"][name] = {}
        for bf16 in (False, True):
            tag = "bf16" if bf16 else "fp32"
            print(f"{name} {tag} ...", file=sys.stderr)
            results["embedder"][name][tag] = embedder_path(name, bf16, args.batch_size, args.seconds,
                                                           args.min_batches, channels_last)
    last = baseline(args.seconds, args.min_batches)
    base = (first["images_per_s"] + last["images_per_s"]) / 2
    results["baseline"] = {"description": "facenet_pytorch.InceptionResnetV1().eval(), plain loop, batch 32, "
                                          "fp32, torch.no_grad, pre-normalised float input 160x160",
                           "first": first, "last": last, "images_per_s_mean": round(base, 2)}
    for name, by_dtype in results["embedder"].items():
        for tag, r in by_dtype.items():
            r["ratio_vs_baseline"] = round(r["images_per_s"] / base, 3)
        by_dtype["bf16_speedup"] = round(by_dtype["bf16"]["images_per_s"] / by_dtype["fp32"]["images_per_s"], 3)
    payload = {
        "what": "images/s of facematch.eval.embed.Embedder.forward_uint8 (uint8 NHWC -> normalise -> "
                f"{'channels_last -> ' if channels_last else ''}[bf16 autocast] -> backbone -> float32), "
                "pre-decoded synthetic crops, no flip, random weights",
        "channels_last": channels_last,
        "results": results,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "settings": {"batch_size": args.batch_size, "seconds": args.seconds, "min_batches": args.min_batches},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"{'backbone':<22}{'fp32 img/s':>12}{'bf16 img/s':>12}{'bf16 x':>8}{'fp32 / base':>13}", file=sys.stderr)
    for name, d in results["embedder"].items():
        print(f"{name:<22}{d['fp32']['images_per_s']:>12.1f}{d['bf16']['images_per_s']:>12.1f}"
              f"{d['bf16_speedup']:>8.2f}{d['fp32']['ratio_vs_baseline']:>13.2f}", file=sys.stderr)
    print(f"baseline (facenet-pytorch loop, batch 32): {base:.1f} img/s; wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
