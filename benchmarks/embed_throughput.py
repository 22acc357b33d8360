"""Embedding throughput on this machine: images/s per backbone, fp32 vs bf16, against a plain facenet-pytorch loop.

    .venv/bin/python benchmarks/embed_throughput.py                 # writes benchmarks/results/embed_throughput.json
    .venv/bin/python benchmarks/embed_throughput.py --seconds 10 --batch-size 128 --out /tmp/bench.json

What is measured: the model path of :class:`facematch.eval.embed.Embedder` (``forward_uint8``): a
pre-decoded uint8 NHWC batch -> normalisation -> ``channels_last`` -> optional bf16 autocast -> backbone ->
float32 features, under ``torch.inference_mode``; no file decoding, no alignment, no flip test (flip
doubles the work per image), random weights (speed does not depend on their values), with
``channels_last`` (the Embedder's default) and, for comparison, the default contiguous layout. Every
configuration runs one warm-up batch; then ``--rounds`` interleaved rounds each run every configuration
for ``--seconds`` (at least ``--min-batches`` batches); the median round is reported (all rounds too).

Baseline, measured in the same rounds: a plain Python loop calling facenet-pytorch's ``InceptionResnetV1().eval()`` on pre-normalised float
batches of 32 at 160x160 under ``torch.no_grad()``, fp32, default memory format. ``ratio_vs_baseline`` is
images/s divided by the baseline's images/s. The JSON records the machine (CPU model,
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


class Config:
    """One measured configuration: a ``step()`` that embeds one batch, and its batch size."""

    def __init__(self, name: str, step, batch: int):
        self.name, self.step, self.batch = name, step, batch
        self.runs: list[float] = []

    def measure(self, seconds: float, min_batches: int) -> None:
        n, t0 = 0, time.perf_counter()
        while True:
            self.step()
            n += 1
            elapsed = time.perf_counter() - t0
            if n >= min_batches and elapsed >= seconds:
                break
        self.runs.append(n * self.batch / elapsed)

    def summary(self) -> dict:
        return {"images_per_s": round(float(np.median(self.runs)), 2), "best": round(max(self.runs), 2),
                "rounds": [round(r, 2) for r in self.runs], "batch_size": self.batch}


def baseline_config() -> Config:
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1().eval()  # pretrained=None: random weights, no download
    x = (torch.randint(0, 256, (32, 3, 160, 160)).float() - 127.5) / 128.0

    def step():
        with torch.no_grad():
            model(x)

    return Config("baseline", step, 32)


def embedder_config(name: str, bf16: bool, batch: int, channels_last: bool) -> Config:
    backbone = build_backbone(name).eval()
    h, w = backbone.spec.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    emb = Embedder(backbone, backbone.spec, flip="none", bf16=bf16, channels_last=channels_last, progress=False)
    tag = f"{name}/{'bf16' if bf16 else 'fp32'}/{'channels_last' if channels_last else 'contiguous'}"
    return Config(tag, lambda: emb.forward_uint8(crops), batch)


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
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median round is reported")
    ap.add_argument("--seconds", type=float, default=1.5, help="measured time per configuration and round")
    ap.add_argument("--min-batches", type=int, default=2)
    ap.add_argument("--layouts", nargs="+", default=["channels_last", "contiguous"],
                    choices=["channels_last", "contiguous"], help="memory formats of the Embedder path")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed_throughput.json"))
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    configs = [baseline_config()]
    for name in args.backbones:
        for layout in args.layouts:
            for bf16 in (False, True):
                configs.append(embedder_config(name, bf16, args.batch_size, layout == "channels_last"))
    for c in configs:  # warm-up: allocations, oneDNN primitive creation
        c.step()
    for r in range(args.rounds):  # interleaved, so that every configuration sees the same load drift
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        for c in configs:
            c.measure(args.seconds, args.min_batches)

    base = configs[0].summary()
    base["description"] = ("facenet_pytorch.InceptionResnetV1().eval(), plain Python loop, batch 32, fp32, "
                           "torch.no_grad, pre-normalised float input 160x160, default memory format")
    embedder: dict = {}
    for c in configs[1:]:
        name, dtype, layout = c.name.split("/")
        s = c.summary()
        s["ratio_vs_baseline"] = round(s["images_per_s"] / base["images_per_s"], 3)
        embedder.setdefault(name, {}).setdefault(layout, {})[dtype] = s
    for by_layout in embedder.values():
        for d in by_layout.values():
            d["bf16_speedup"] = round(d["bf16"]["images_per_s"] / d["fp32"]["images_per_s"], 3)
    payload = {
        "what": "images/s of facematch.eval.embed.Embedder.forward_uint8 (uint8 NHWC -> normalise -> "
                "[channels_last] -> [bf16 autocast] -> backbone -> float32), pre-decoded synthetic crops, "
                "no flip test, random weights; median of interleaved rounds",
        "baseline": base,
        "embedder": embedder,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "settings": {"batch_size": args.batch_size, "rounds": args.rounds, "seconds": args.seconds,
                     "min_batches": args.min_batches},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"{'backbone':<21}{'layout':<15}{'fp32 img/s':>11}{'bf16 img/s':>11}{'bf16 x':>8}{'fp32/base':>10}"
          f"{'bf16/base':>10}", file=sys.stderr)
    for name, by_layout in embedder.items():
        for layout, d in by_layout.items():
            print(f"{name:<21}{layout:<15}{d['fp32']['images_per_s']:>11.1f}{d['bf16']['images_per_s']:>11.1f}"
                  f"{d['bf16_speedup']:>8.2f}{d['fp32']['ratio_vs_baseline']:>10.2f}"
                  f"{d['bf16']['ratio_vs_baseline']:>10.2f}", file=sys.stderr)
    print(f"baseline (facenet-pytorch loop, batch 32): {base['images_per_s']:.1f} img/s; wrote {args.out}",
          file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
