"""Gallery search latency: faiss (exact and HNSW) against a plain numpy matrix product, same run.

    .venv/bin/python benchmarks/gallery_search.py               # writes benchmarks/results/gallery_search.json
    .venv/bin/python benchmarks/gallery_search.py --sizes 2000 --repeats 3 --out /tmp/gs.json   # a quick check

For each gallery size (10^4, 10^5, 10^6 by default): synthetic unit vectors of the model's dimension (256:
MobileFaceNet with flip concat), queries drawn near gallery vectors (a face of an enrolled person), and
per query the top ``k`` = 5 by inner product, one query at a time (``single``, what
``facematch-gallery search`` does) and ``--batch`` queries at once (``batch``, per query). Methods:

- ``numpy``: ``queries @ gallery.T`` then ``np.argpartition`` + a sort of the ``k`` (the plain baseline);
- ``faiss_flat``: :class:`facematch.gallery.index.VectorIndex` ``flat`` (``IndexFlatIP``, exact);
- ``faiss_hnsw``: ``hnsw`` (``IndexHNSWFlat``, inner product), with its build time and recall@1 against the
  exact answer.

Median of ``--repeats`` timed rounds after a warm-up; the methods alternate within each round. Machine
info (CPU model, flags, threads) and the load average are recorded beside the figures.
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

from facematch.gallery.index import VectorIndex  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402


def unit_rows(rng, n: int, d: int, chunk: int = 100_000) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - i), d), dtype=np.float32)
        out[i: i + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def numpy_topk(gallery: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = q @ gallery.T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(sims, part, 1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(top, order, 1), np.take_along_axis(part, order, 1)


def per_query_ms(fn, queries: np.ndarray, batch: int) -> float:
    """Milliseconds per query: one at a time (batch 1) or ``batch`` at once."""
    t0 = time.perf_counter()
    for i in range(0, len(queries), batch):
        fn(queries[i: i + batch])
    return 1000.0 * (time.perf_counter() - t0) / len(queries)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256, help="embedding size (MobileFaceNet, flip concat: 256)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--queries", type=int, default=64, help="queries per round (each timed singly and as a batch)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hnsw-max", type=int, default=200_000,
                    help="build HNSW only up to this many vectors (a 10^6 build ran past 6 minutes on 2 cores)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gallery_search.json"))
    args = ap.parse_args(argv)
    import faiss

    rng = np.random.default_rng(0)
    t_start, load = time.perf_counter(), os.getloadavg()
    results = {}
    for n in args.sizes:
        print(f"gallery of {n:,} vectors", file=sys.stderr)
        g = unit_rows(rng, n, args.dim)
        near = g[rng.integers(0, n, args.queries)] + 0.6 * unit_rows(rng, args.queries, args.dim)
        q = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
        built = {}
        kinds = ("flat", "hnsw") if n <= args.hnsw_max else ("flat",)
        for kind in kinds:
            t0 = time.perf_counter()
            built[kind] = VectorIndex(g, kind)
            built[f"{kind}_build_s"] = round(time.perf_counter() - t0, 3)
        methods = {"numpy": lambda x: numpy_topk(g, x, args.k),
                   "faiss_flat": lambda x: built["flat"].search(x, args.k)}
        if "hnsw" in built:
            methods["faiss_hnsw"] = lambda x: built["hnsw"].search(x, args.k)
        times: dict[str, list[float]] = {f"{m}/{mode}": [] for m in methods for mode in ("single", "batch")}
        for fn in methods.values():
            fn(q[:1])  # warm-up
        for _ in range(args.repeats):
            for m, fn in methods.items():
                times[f"{m}/single"].append(per_query_ms(fn, q, 1))
                times[f"{m}/batch"].append(per_query_ms(fn, q, args.batch))
        exact = numpy_topk(g, q, 1)[1][:, 0]
        recall = {kind: float(np.mean(built[kind].search(q, 1)[1][:, 0] == exact)) for kind in kinds}
        med = {k: round(float(np.median(v)), 4) for k, v in times.items()}
        results[str(n)] = {
            "ms_per_query": med,
            "speedup_vs_numpy": {k: round(med[f"numpy/{k.split('/')[1]}"] / v, 2) for k, v in med.items() if v > 0},
            "recall_at_1_vs_exact": recall,
            "build_s": {k: built[f"{k}_build_s"] for k in kinds},
            "rounds_ms": {k: [round(x, 4) for x in v] for k, v in times.items()},
        }
        print("  " + ", ".join(f"{k} {v:.3f} ms" for k, v in med.items()), file=sys.stderr)
        del g, built, methods
    payload = {
        "what": "per-query top-k search latency, synthetic unit vectors; single = one query at a time, "
                "batch = --batch queries at once (per query)",
        "results": results,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "faiss": {"version": faiss.__version__, "omp_threads": faiss.omp_get_max_threads()},
        "machine": {**machine_info(), "loadavg_before": [round(v, 2) for v in load]},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
