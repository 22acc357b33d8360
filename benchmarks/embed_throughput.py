"""Embedding throughput per backbone: runtimes and precisions against a plain loop, and end to end vs model only.

    .venv/bin/python benchmarks/embed_throughput.py                     # writes benchmarks/results/embed_throughput.json
    .venv/bin/python benchmarks/embed_throughput.py --backbones mobilefacenet --batch-size 256 --out /tmp/b.json

Measured in one process, in interleaved rounds (the median round is reported, all rounds kept):

- ``baseline``: a plain fp32 PyTorch loop, ``backbone(x)`` under ``torch.no_grad`` on a pre-normalised NCHW
  float batch, default memory format: what anyone would write. Every ratio is against it.
- ``model/<runtime>``: :mod:`facematch.models.inference` (``eager``, ``fused``, ``jit``) in fp32 on the same
  batch; ``model/eager-bf16``: bf16 autocast (on a CPU without native bf16 it is emulated: expect it slow).
- ``end_to_end``: :meth:`facematch.embedding.embedder.Embedder.embed` over real ``lfw-aligned-112`` files (decode,
  crop to the backbone's template, DataLoader worker, normalise, model), no cache, no flip, with the
  runtime ``auto`` chose, and ``model_only`` the same runtime on pre-decoded crops at the same batch size:
  ``end_to_end_vs_model`` is the pipeline's share of the model's speed.

Random weights (speed does not depend on their values). The JSON records the CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.utils.allocator import tune  # noqa: E402  (allocator settings first)

tune()
import torch  # noqa: E402

from facematch.embedding.embedder import normalize_batch  # noqa: E402
from facematch.embedding.embedder import Embedder  # noqa: E402
from facematch.data.source import FaceSource  # noqa: E402
from facematch.models import inference  # noqa: E402
from facematch.models.backbones import build_backbone  # noqa: E402
from facematch.paths import data_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402

BACKBONES = ("mobilefacenet", "inception_resnet_v1", "resnet50")


def rate(step, batch: int, seconds: float, min_batches: int) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= min_batches and elapsed >= seconds:
            return n * batch / elapsed


def real_files(root: Path, n: int) -> list[str]:
    rels = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.jpg"))
    if len(rels) < n:
        raise SystemExit(f"need {n} images under {root}, found {len(rels)} (set FACEMATCH_DATA_DIR)")
    return rels[:: max(1, len(rels) // n)][:n]


def bench_backbone(name: str, args, root: Path) -> dict:
    backbone = build_backbone(name).eval()
    spec, b = backbone.spec, args.batch_size
    source = FaceSource(root, spec.template, mode="prealigned", src_template="arcface_112x112")
    rels = real_files(root, args.e2e_batches * b)
    crops = np.stack([source(r) for r in rels[:b]])
    x = normalize_batch(crops, spec)
    steps = {"baseline": lambda: backbone(x)}
    for rt in ("eager", "fused", "jit"):
        m = inference.build(backbone, rt, torch.device("cpu"), example=x)
        steps[f"model/{rt}"] = (lambda m: lambda: m(x))(m)
    bf16 = inference.build(backbone, "eager", torch.device("cpu"), bf16=True)
    steps["model/eager-bf16"] = lambda: bf16(x)
    # the runtime auto picks for a job of this size, used end to end and model-only
    auto = Embedder(backbone, spec, flip="none", precision="fp32", runtime="auto", batch_size=b, progress=False)
    auto._expected = len(rels)
    chosen = auto._inference_model(x).runtime
    e2e = Embedder(backbone, spec, source, flip="none", precision="fp32", runtime=chosen, batch_size=b,
                   num_workers=args.workers, progress=False)
    steps["model_only"] = lambda: e2e.forward_views(crops)

    def end_to_end():
        e2e.embed(rels)

    results: dict[str, list[float]] = {k: [] for k in [*steps, "end_to_end"]}
    with torch.no_grad():
        for step in steps.values():  # warm-up
            step()
        end_to_end()
        for r in range(args.rounds):
            print(f"{name}: round {r + 1}/{args.rounds}", file=sys.stderr)
            for k, step in steps.items():
                slow = k.endswith("bf16") and not machine_info()["cpu"]["native_bf16"]
                results[k].append(rate(step, b, args.seconds / (4 if slow else 1), 1 if slow else args.min_batches))
            t0 = time.perf_counter()
            end_to_end()
            results["end_to_end"].append(len(rels) / (time.perf_counter() - t0))
    med = {k: round(float(np.median(v)), 2) for k, v in results.items()}
    return {
        "images_per_s": med,
        "ratio_vs_baseline": {k: round(v / med["baseline"], 3) for k, v in med.items()},
        "end_to_end_vs_model": round(med["end_to_end"] / med["model_only"], 3),
        "auto_runtime": chosen,
        "probe_images_per_s": auto._net.info.get("probe_images_per_s"),
        "end_to_end_workers": e2e.stats.get("workers"),
        "end_to_end_images": len(rels),
        "rounds": {k: [round(x, 2) for x in v] for k, v in results.items()},
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured time per configuration and round")
    ap.add_argument("--min-batches", type=int, default=2)
    ap.add_argument("--e2e-batches", type=int, default=8, help="end-to-end job size, in batches")
    ap.add_argument("--workers", default="auto", help="Embedder num_workers for the end-to-end job")
    ap.add_argument("--root", default=str(data_dir() / "lfw-aligned-112"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed_throughput.json"))
    args = ap.parse_args(argv)
    t0, load = time.perf_counter(), os.getloadavg()
    out = {name: bench_backbone(name, args, Path(args.root)) for name in args.backbones}
    payload = {
        "what": __doc__.split("\n\n")[2].strip(),
        "backbones": out,
        "machine": {**machine_info(), "loadavg_before": [round(v, 2) for v in load],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "wall_s": round(time.perf_counter() - t0, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    cpu = payload["machine"]["cpu"]
    print(f"{cpu['model']} ({', '.join(cpu['flags'])}); batch {args.batch_size}; images/s (x baseline)", file=sys.stderr)
    for name, d in out.items():
        cells = "  ".join(f"{k} {v:.1f} (x{d['ratio_vs_baseline'][k]:.2f})" for k, v in d["images_per_s"].items())
        print(f"{name}: {cells}; end to end / model only = {d['end_to_end_vs_model']:.3f} "
              f"(runtime {d['auto_runtime']})", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
