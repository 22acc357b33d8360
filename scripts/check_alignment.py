"""How close is our alignment to the reference crops? MobileFaceNet cosine, image by image.

For every image of ``--pairs`` (7,701 for LFW pairs.txt) this embeds, with the CASIA MobileFaceNet,
(a) our ``arcface_112x112`` crop from the aligned cache ``--cache`` (made from ``--src``; crops missing
from the cache are aligned on first use) and (b) the reference crop from ``--reference``
(lfw-aligned-112), both cut to the network's ``sphereface_112x96`` template (columns 8..104), and reports
the cosine similarity between the two embeddings: mean, percentiles, the worst images, and how many of
our crops are centre-crop fallbacks. ``--baseline`` also scores the fallback crop (average LFW face
position, no detection) of every image against the reference, for scale.

    python scripts/check_alignment.py --cache /tmp/fm-aligned --out /tmp/check_alignment.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facematch.data.pair_files import read_pairs
from facematch.embedding.embedder import Embedder
from facematch.errors import cli_errors
from facematch.faces.align import align_landmarks, fallback_landmarks
from facematch.faces.crop_cache import AlignedCache
from facematch.faces.detect import DetectorSettings
from facematch.faces.images import load_image
from facematch.faces.templates import crop_between
from facematch.models.backbones import build_backbone
from facematch.paths import add_lfw_arguments, weights_dir


def embed(model, spec, crops: list[np.ndarray], batch_size: int) -> np.ndarray:
    """L2-normalised embeddings of in-memory crops (no flip), through the evaluation embedder."""
    emb = Embedder(model, spec, flip="none", batch_size=batch_size, progress=False).embed_arrays(np.stack(crops))
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def to_net(arcface_crop: np.ndarray, template: str) -> np.ndarray:
    return np.ascontiguousarray(crop_between(arcface_crop, "arcface_112x112", template))


def stats(cos: np.ndarray) -> dict:
    return {
        "mean": round(float(cos.mean()), 4),
        "p1": round(float(np.percentile(cos, 1)), 4),
        "p5": round(float(np.percentile(cos, 5)), 4),
        "median": round(float(np.median(cos)), 4),
        "min": round(float(cos.min()), 4),
        "below_0.5": int((cos < 0.5).sum()),
    }


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lfw_arguments(ap)
    ap.add_argument("--cache", default="/tmp/fm-aligned", help="aligned cache of --src (made on first use)")
    ap.add_argument("--template", default="arcface_112x112",
                    help="template of --cache: arcface_112x112 or sphereface_112x96 (facematch-eval's MobileFaceNet cache)")
    ap.add_argument("--select", default=DetectorSettings().select, help="face selection rule the cache was made with")
    ap.add_argument("--weights", default=str(weights_dir() / "mobilefacenet_casia_068.ckpt"))
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--baseline", action="store_true", help="also score the no-detection fallback crop")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    rels = sorted({p for pair in read_pairs(args.pairs) for p in (pair.a, pair.b)})
    model = build_backbone("mobilefacenet", weights=args.weights).eval()
    spec = model.spec
    cache = AlignedCache(args.cache, args.template, args.src, select=args.select)

    ours, refs, base, statuses, n_faces = [], [], [], [], []
    for rel in rels:
        ours.append(np.ascontiguousarray(crop_between(cache.get(rel), args.template, spec.template)))
        rec = cache.record(rel) or {}
        statuses.append(rec.get("status", "unknown"))
        n_faces.append(rec.get("n_faces"))
        refs.append(to_net(np.asarray(load_image(Path(args.reference) / rel)), spec.template))
        if args.baseline:
            img = load_image(Path(args.src) / rel)
            base.append(to_net(align_landmarks(img, fallback_landmarks(*img.size), "arcface_112x112"), spec.template))
    ref_emb = embed(model, spec, refs, args.batch_size)
    cos = (embed(model, spec, ours, args.batch_size) * ref_emb).sum(1)
    statuses = np.array(statuses)
    worst = np.argsort(cos)[:20]
    result = {
        "images": len(rels),
        "pairs_file": args.pairs,
        "cache": args.cache,
        "reference": args.reference,
        "backbone": "mobilefacenet (CASIA, epoch 68), sphereface_112x96 cut of both crops, no flip",
        "cosine": stats(cos),
        "cosine_detected_only": stats(cos[statuses == "ok"]) if (statuses == "ok").any() else None,
        "fallbacks": int((statuses == "fallback").sum()),
        "multiple_faces": int(sum(1 for n in n_faces if (n or 0) > 1)),
        "worst": [{"path": rels[i], "cosine": round(float(cos[i]), 4), "status": str(statuses[i])} for i in worst],
        "manifest_counts": (json.loads((Path(args.cache) / "manifest.json").read_text()).get("counts")
                            if (Path(args.cache) / "manifest.json").is_file() else None),
    }
    if args.baseline:
        bcos = (embed(model, spec, base, args.batch_size) * ref_emb).sum(1)
        result["baseline_fallback_crop_cosine"] = stats(bcos)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("images", "cosine", "fallbacks", "multiple_faces")}, indent=2))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    sys.exit(main())
