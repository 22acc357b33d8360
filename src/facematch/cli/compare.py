"""``facematch-compare IMG1 IMG2``: are these two photos of the same person?

    facematch-compare a.jpg b.jpg                         # mobilefacenet, $FACEMATCH_WEIGHTS_DIR weights
    facematch-compare a.jpg b.jpg --arch mobilefacenet --weights W.ckpt --threshold 0.3 --json
    facematch-compare a.jpg b.jpg --ckpt outputs/runs/train/.../checkpoints/last.ckpt

Each photo is decoded (EXIF-rotated, any colour mode), searched for faces with MTCNN, the face is aligned
onto the model's template with its five landmarks (box crop for box templates), and embedded exactly as
``facematch-eval`` embeds by default (flip test ``concat``). The score is the cosine similarity of the two
embeddings; the pair is *same* iff ``similarity >= threshold``. That is the rule behind ``metrics.json``'s
``accuracy_at_threshold`` / ``f1_at_threshold``, so an evaluation of the same model tells how good a
threshold is (its ``best_f1_threshold`` is a data-driven choice).

Faces (no centre-crop fallback here: a photo without a detectable face is an error):

- no face: exit 3 (``NoFaceError``);
- several faces *of similar size* (another face whose box area is at least half of the largest one's):
  exit 4 (``MultipleFacesError``) unless ``--select largest|nearest_center`` says which to use. Smaller
  faces (people in the background, common in press photos such as LFW) are ignored, and the largest
  face is used;
- an unreadable file (not an image, empty, corrupt, too large): exit 5; a missing file: exit 2;
- weights missing or not loadable: exit 6.

Errors are one ``error: ...`` line on stderr and no traceback (``FACEMATCH_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from facematch.errors import DataNotFoundError, FacematchError, MultipleFacesError, NoFaceError, WeightsError, cli_errors, debug_enabled

#: Default weights file per backbone, looked up in $FACEMATCH_WEIGHTS_DIR when --weights is not given.
DEFAULT_WEIGHTS = {"mobilefacenet": "mobilefacenet_casia_068.ckpt"}
#: A second face at least this fraction of the largest face's box area makes the photo ambiguous.
SIMILAR_SIZE = 0.5


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facematch-compare",
        description="Detect, align and embed one face in each photo; print their cosine similarity and "
        "the same/different decision.",
    )
    p.add_argument("img1", help="first photo")
    p.add_argument("img2", help="second photo")
    p.add_argument("--arch", default="mobilefacenet", help="backbone (default: mobilefacenet)")
    p.add_argument("--weights", default=None,
                   help="backbone weights file (default for mobilefacenet: $FACEMATCH_WEIGHTS_DIR/"
                        "mobilefacenet_casia_068.ckpt)")
    p.add_argument("--ckpt", default=None, help="a facematch-train checkpoint (backbone + head); overrides --arch")
    p.add_argument("--threshold", type=float, default=0.6, help="cosine threshold for 'same' (default: 0.6)")
    p.add_argument("--json", action="store_true", help='print {"similarity", "same", "threshold"} as JSON')
    p.add_argument("--select", choices=("largest", "nearest_center"), default=None,
                   help="which face to use when a photo has several faces of similar size "
                        "(default: refuse such photos, exit 4)")
    p.add_argument("--flip", choices=("none", "sum", "concat"), default="concat",
                   help="flip test, as facematch-eval's eval.flip (default: concat)")
    p.add_argument("--min-face-size", type=int, default=20, help="smallest face searched, pixels (default: 20)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs (default: auto, the GPU when there is one)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 only where the hardware has it natively (default: auto)")
    return p


def _weights_for(arch: str, weights: str | None) -> str:
    if weights:
        return weights
    from facematch.paths import weights_dir

    name = DEFAULT_WEIGHTS.get(arch)
    if name is None:
        raise WeightsError(f"no default weights for {arch}; pass --weights PATH or --ckpt PATH")
    path = weights_dir() / name
    if not path.is_file():  # a default that is not there: say how to point at it
        raise WeightsError(
            f"weights file not found: {path}; pass --weights PATH or set FACEMATCH_WEIGHTS_DIR to the folder holding {name}"
        )
    return str(path)


def pick_face(det, path: str, select: str | None) -> int:
    """Index of the face to use in ``det`` (see the module docstring for the rule)."""
    from facematch.faces.detect import select_face

    n = len(det)
    if n == 0:
        raise NoFaceError(f"no face found in {path}; use a photo in which a face is clearly visible")
    if select is None and n > 1:
        b = det.boxes.astype(np.float64)
        area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
        similar = int((area >= SIMILAR_SIZE * area.max()).sum())
        if similar > 1:
            raise MultipleFacesError(
                f"{similar} faces of similar size in {path}; crop it to one person or pass "
                "--select largest|nearest_center"
            )
    return select_face(det, select or "largest")


def detect_face(img, path: str, select: str | None, min_face_size: int = 20):
    """``(landmarks (5, 2), box (4,), number of faces)`` of the face to use in ``img``."""
    from facematch.faces.detect import DetectorSettings, get_detector

    det = get_detector(DetectorSettings(min_face_size=min_face_size, select=select or "largest")).detect_one(img)
    k = pick_face(det, path, select)
    return det.landmarks[k], det.boxes[k], len(det)


def _check_model_file(args: argparse.Namespace) -> str | None:
    """The weights file to use (None with --ckpt); a missing file fails here, before any detection."""
    if args.ckpt:
        if not Path(args.ckpt).expanduser().is_file():
            raise WeightsError(f"checkpoint not found: {args.ckpt} (--ckpt PATH to a facematch-train .ckpt file)")
        return None
    weights = _weights_for(args.arch, args.weights)
    if not Path(weights).expanduser().is_file():
        raise WeightsError(f"weights file not found: {weights} (check --weights PATH)")
    return weights


def compare(args: argparse.Namespace) -> dict:
    """Cheap checks first (files, decoding, weights present), then detection, then the model."""
    from facematch.faces.images import load_image

    paths = (args.img1, args.img2)
    for p in paths:
        if not Path(p).exists():
            raise DataNotFoundError(f"image not found: {p}")
    images = [load_image(p) for p in paths]
    weights = _check_model_file(args)
    faces = [detect_face(img, p, args.select, args.min_face_size) for img, p in zip(images, paths)]

    from facematch.embedding.embedder import Embedder
    from facematch.models.loading import build_arch_model, load_checkpoint_model
    from facematch.faces.align import crop_face

    model = load_checkpoint_model(args.ckpt) if args.ckpt else build_arch_model(args.arch, weights)
    crops = np.stack([crop_face(img, box, lm, model.spec.template) for img, (lm, box, _) in zip(images, faces)])
    emb = Embedder(model.module, model.spec, flip=args.flip, device=args.device, precision=args.precision,
                   progress=False).embed_arrays(crops)
    a, b = emb[0].astype(np.float64), emb[1].astype(np.float64)
    sim = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    return {"similarity": sim, "same": bool(sim >= args.threshold), "threshold": float(args.threshold),
            "faces": [n for _, _, n in faces], "arch": model.spec.name}


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not debug_enabled():
        warnings.filterwarnings("ignore")
    from facematch.models.backbones import BACKBONES

    if not args.ckpt and args.arch not in BACKBONES:
        raise FacematchError(f"unknown backbone '{args.arch}'; choose one of: {', '.join(BACKBONES)}")
    r = compare(args)
    if args.json:
        print(json.dumps({"similarity": round(r["similarity"], 6), "same": r["same"], "threshold": r["threshold"]}))
    else:
        verdict = "same person" if r["same"] else "different people"
        op = ">=" if r["same"] else "<"
        print(f"similarity {r['similarity']:.4f} {op} {r['threshold']:g}: {verdict}")
        notes = [f"{os.path.basename(p)}: {n} faces, used the {args.select or 'largest'}"
                 for p, n in zip((args.img1, args.img2), r["faces"]) if n > 1]
        if notes:
            print("(" + "; ".join(notes) + ")", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
