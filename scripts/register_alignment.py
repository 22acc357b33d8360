"""Is our alignment geometrically the same as the reference crops'? Image registration, image by image.

For ``--n`` images of ``--pairs`` (a seeded sample), this aligns the raw photo (``--src``) onto
``arcface_112x112`` with facematch's detector (``--landmark-offset`` px added to MTCNN's landmarks; several
offsets share one detection pass, each registered in turn), then
finds, by gradient descent on the normalised grey-level difference (blurred, central region), the affine
warp that best maps our crop onto the reference crop of the same image (``--reference``,
lfw-aligned-112). It reports where the template's five points of the reference crop sit in our crops:
median and mean over the images, and the median shift. A shift that is the same for all five points is a
convention difference between the two landmark detectors, not noise; it is how the detector's
``landmark_offset`` (-0.5 px) was measured:

    python scripts/register_alignment.py --landmark-offset 0 -0.5 --out /tmp/register.json

The JSON holds one entry of ``runs`` per offset (0: the raw detector; -0.5: the residual with the correction).

Hand-written because no installed library registers images (OpenCV's findTransformECC and scikit-image
are not dependencies); it is ~20 lines of torch ``affine_grid`` / ``grid_sample``.
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
import torch.nn.functional as F

from facematch.data.pair_files import read_pairs
from facematch.errors import cli_errors
from facematch.faces.align import FaceAligner, align_landmarks
from facematch.faces.detect import LANDMARK_OFFSET
from facematch.faces.images import load_image
from facematch.faces.templates import get_template
from facematch.paths import add_lfw_arguments

SIZE = 112


def _grey(batch: np.ndarray) -> torch.Tensor:
    return torch.tensor(batch, dtype=torch.float32).mean(-1, keepdim=True).permute(0, 3, 1, 2) / 255.0


def register(ours: np.ndarray, ref: np.ndarray, steps: int = 300) -> np.ndarray:
    """Per image, the 2x3 ``affine_grid`` matrix (normalised coordinates) sampling ``ours`` to match ``ref``."""
    o, r = _grey(ours), _grey(ref)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 16:104, 16:96] = 1  # the face, not the black border a warp leaves

    def norm(x):
        m = (x * mask).sum((2, 3), keepdim=True) / mask.sum()
        v = (((x - m) * mask) ** 2).sum((2, 3), keepdim=True) / mask.sum()
        return (x - m) / v.sqrt().clamp_min(1e-4)

    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = ((k[:, None] * k[None]) / 256.0)[None, None]  # 5x5 binomial blur widens the basin of attraction
    o, r = F.conv2d(o, k, padding=2), norm(F.conv2d(r, k, padding=2))
    theta = torch.eye(2, 3).repeat(len(o), 1, 1).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=3e-3)
    for _ in range(steps):
        warped = F.grid_sample(o, F.affine_grid(theta, o.shape, align_corners=False), align_corners=False)
        loss = (((norm(warped) - r) ** 2) * mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return theta.detach().numpy()


def reference_points_in_ours(theta: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 5, 2): where ``points`` (reference crop pixels, integer centres) land in our crops."""
    to_norm = (points + 0.5) / (SIZE / 2) - 1.0  # align_corners=False
    q = np.einsum("pk,njk->npj", to_norm, theta[:, :, :2]) + theta[:, None, :, 2]
    return (q + 1.0) * (SIZE / 2) - 0.5


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lfw_arguments(ap)
    ap.add_argument("--n", type=int, default=500, help="images to register (seeded sample)")
    ap.add_argument("--landmark-offset", type=float, nargs="+", default=[LANDMARK_OFFSET],
                    help="pixels added to MTCNN's landmarks; several values share one detection pass")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    rels = sorted({p for pair in read_pairs(args.pairs) for p in (pair.a, pair.b)})
    pick = np.random.default_rng(args.seed).choice(len(rels), min(args.n, len(rels)), replace=False)
    rels = [rels[i] for i in sorted(pick)]
    aligner = FaceAligner("arcface_112x112", select="nearest_center", landmark_offset=0.0)
    located = aligner.locate([load_image(Path(args.src) / rel) for rel in rels])  # each offset re-warps these
    photos, marks = [loc[0] for loc in located], [loc[2] for loc in located]
    ref = np.stack([np.asarray(load_image(Path(args.reference) / rel)) for rel in rels])
    template = get_template("arcface_112x112").landmarks
    runs = []
    for offset in args.landmark_offset:
        ours = np.stack([align_landmarks(p, m + offset, "arcface_112x112") for p, m in zip(photos, marks)])
        pts = reference_points_in_ours(register(ours, ref, args.steps), template)
        runs.append({
            "landmark_offset": offset,
            "reference_points_in_ours_median": np.median(pts, 0).round(3).tolist(),
            "reference_points_in_ours_mean": pts.mean(0).round(3).tolist(),
            "median_shift_per_point": np.median(pts - template, axis=0).round(3).tolist(),
            "median_shift_xy": np.median(pts - template, axis=(0, 1)).round(3).tolist(),
        })
    result = {"images": len(rels), "template": template.round(4).tolist(), "runs": runs,
              "elapsed_s": round(time.perf_counter() - t0, 1)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(json.dumps({"images": len(rels), "landmark_offset": run["landmark_offset"],
                          "median_shift_xy": run["median_shift_xy"]}))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    sys.exit(main())
