"""MTCNN detection of raw photos: facenet-pytorch's ``MTCNN`` image by image against facematch's batched detector.

    .venv/bin/python benchmarks/detection.py                    # writes benchmarks/results/detection.json
    .venv/bin/python benchmarks/detection.py --n 256 --batches 1 8 16 32

One process, one torch thread per detector (as each ``prepare`` worker runs), the same LFW deep-funneled
photos (decoded beforehand) for every configuration, interleaved rounds, median reported:

- ``baseline``: ``facenet_pytorch.MTCNN(keep_all=True)`` and ``mtcnn.detect(image, landmarks=True)`` per image.
- ``batch_<B>``: :class:`facematch.faces.detect.FaceDetector` on lists of ``B`` images (equal sizes run as
  one MTCNN batch), the path ``facematch-data prepare`` and ``facematch-eval`` on raw photos use.

It also reports how far batched landmarks move from per-image ones (float rounding inside the batched
convolutions), in pixels of the source photo.
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

from facematch.faces.detect import FaceDetector  # noqa: E402
from facematch.faces.images import load_image  # noqa: E402
from facematch.paths import data_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="photos per configuration and round")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (prepare workers run one each)")
    ap.add_argument("--root", default=str(data_dir() / "lfw" / "lfw-deepfunneled"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "detection.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted(Path(args.root).glob("*/*.jpg"))
    files = files[:: max(1, len(files) // args.n)][: args.n]
    images = [load_image(f) for f in files]

    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")
    ours = FaceDetector()

    def baseline():
        return [mtcnn.detect(im, landmarks=True) for im in images]

    def batched(b):
        return lambda: [d for i in range(0, len(images), b) for d in ours.detect(images[i : i + b])]

    configs = {"baseline": baseline, **{f"batch_{b}": batched(b) for b in args.batches}}
    rates: dict[str, list[float]] = {k: [] for k in configs}
    t_start, load = time.perf_counter(), os.getloadavg()
    with torch.no_grad():
        for fn in configs.values():
            fn()  # warm-up
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for k, fn in configs.items():
                t0 = time.perf_counter()
                fn()
                rates[k].append(len(images) / (time.perf_counter() - t0))
        single = batched(1)()
        largest = batched(max(args.batches))()
    moves = [float(np.abs(a.landmarks[0] - b.landmarks[0]).max()) for a, b in zip(single, largest) if len(a) and len(b)]
    med = {k: round(float(np.median(v)), 2) for k, v in rates.items()}
    payload = {
        "what": "LFW deep-funneled photos (250x250) per second, MTCNN on CPU, decoded beforehand",
        "images_per_s": med,
        "ratio_vs_baseline": {k: round(v / med["baseline"], 3) for k, v in med.items()},
        "rounds": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "landmark_shift_px_batch_vs_single": {"max": round(max(moves), 5), "median": round(float(np.median(moves)), 6)},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {**machine_info(), "loadavg_before": [round(v, 2) for v in load]},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(" ".join(f"{k} {v:.1f}/s (x{payload['ratio_vs_baseline'][k]:.2f})" for k, v in med.items()), file=sys.stderr)
    print(f"landmark shift batch vs single: {payload['landmark_shift_px_batch_vs_single']}; wrote {args.out}",
          file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
