"""``facematch-compare IMG1 IMG2``: are these two photos of the same person?

    facematch-compare a.jpg b.jpg                         # mobilefacenet, $FACEMATCH_WEIGHTS_DIR weights
    facematch-compare a.jpg b.jpg --arch mobilefacenet --weights W.ckpt --json
    facematch-compare a.jpg b.jpg --ckpt outputs/runs/train/.../checkpoints/last.ckpt --threshold 0.3
    facematch-compare a.jpg b.jpg --show side_by_side.png
    facematch-compare id_photo.jpg camera_face.jpg --probe-ckpt student.ckpt --threshold 0.3   # small 2nd face

Each photo goes the one path of :class:`facematch.embedding.photos.FaceEmbedder` (decode, MTCNN, 5-point
alignment onto the model's template, the embedding ``facematch-eval`` computes with flip test ``concat``).
The score is the cosine similarity of the two embeddings; the pair is *same* iff ``similarity >=
threshold``, and the threshold is the model's calibrated operating point (``facematch-calibrate``; FAR
1e-3 on LFW by default), printed with its FAR and TAR; ``--threshold`` overrides it. A model with no
calibration stops with one line saying how to make one.

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
from pathlib import Path

from facematch.app.quality import CANNOT_DECIDE, add_quality_arguments, quality_gate
from facematch.app.model_args import (add_model_arguments, add_threshold_arguments, check_model_file,
                                      decision_threshold, face_embedder, load_model)
from facematch.app.probe_model import add_probe_arguments, cross_similarity, probe_embedder
from facematch.embedding.photos import accepted, pair_similarity
from facematch.errors import DataNotFoundError, cli_errors
from facematch.utils.allocator import tune as tune_allocator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facematch-compare",
        description="Detect, align and embed one face in each photo; print their cosine similarity and "
        "the same/different decision at the model's calibrated threshold.",
    )
    p.add_argument("img1", help="first photo")
    p.add_argument("img2", help="second photo")
    add_model_arguments(p)
    add_threshold_arguments(p)
    add_quality_arguments(p)
    add_probe_arguments(p)
    p.add_argument("--json", action="store_true",
                   help='print {"similarity", "same", "threshold", "operating_point", ...} as JSON')
    p.add_argument("--select", choices=("largest", "nearest_center"), default=None,
                   help="which face to use when a photo has several faces of similar size "
                        "(default: refuse such photos, exit 4)")
    p.add_argument("--show", default=None, metavar="PNG",
                   help="also save a side-by-side picture: each photo with its face box, the aligned crops, "
                        "the similarity and the decision")
    return p


def compare(args: argparse.Namespace) -> dict:
    """Cheap checks first (files, decoding, weights present), then detection, then the model."""
    from facematch.faces.images import load_image

    paths = (args.img1, args.img2)
    for p in paths:
        if not Path(p).exists():
            raise DataNotFoundError(f"image not found: {p}")
    images = [load_image(p) for p in paths]
    check_model_file(args)
    model = load_model(args)
    fe = face_embedder(args, model)
    probe = probe_embedder(args, fe)  # --probe-ckpt: the second photo embedded by a model for small faces
    decision = decision_threshold(args, model, fe.settings)  # before detection: a missing calibration fails fast
    gate = quality_gate(args, model)  # each face rated by the gallery-side model's quality head
    views = None  # one forward pass serves the embeddings and the quality scores
    if probe is None:
        photos = [fe.faces(img, p, args.select) for img, p in zip(images, paths)]
        views = fe.views([p.faces[0].crop for p in photos])
        sim = pair_similarity(fe, photos, views)
    else:
        photos = [fe.faces(images[0], paths[0], args.select), probe.faces(images[1], paths[1], args.select)]
        sim = cross_similarity(fe, probe, photos)
    quality = gate.scores(fe, [p.faces[0].crop for p in photos], views)
    low = [q for q in quality if gate.too_low(q)]  # issue 33: too poor a face -> no verdict
    return {"similarity": sim, "same": None if low else accepted(sim, decision["threshold"]), "decision": decision,
            "photos": photos, "arch": model.spec.name, "quality": quality, "gate": gate}


def result_json(r: dict) -> dict:
    d = r["decision"]
    out = {"similarity": round(r["similarity"], 6), "same": r["same"], "threshold": round(d["threshold"], 6),
           "threshold_source": d["source"], "quality": r["quality"], "min_quality": r["gate"].threshold}
    if r["same"] is None:
        out["verdict"] = CANNOT_DECIDE
    if d["source"] == "calibration":
        out.update(operating_point=d["operating_point"], far=d["far"], tar=d["tar"])
    return out


@cli_errors
def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    r = compare(args)
    if args.show:
        from facematch.embedding.figures import compare_figure

        compare_figure(r["photos"], r["similarity"], r["same"], r["decision"]["text"], args.show)
    if args.json:
        print(json.dumps(result_json(r)))
    else:
        print_text(r)
        notes = [f"{os.path.basename(p.path)}: {p.n_detected} faces, used the {args.select or 'largest'}"
                 for p in r["photos"] if p.n_detected > 1]
        if notes:
            print("(" + "; ".join(notes) + ")", file=sys.stderr)
    return 0


def print_text(r: dict) -> None:
    gate, names = r["gate"], [os.path.basename(p.path) for p in r["photos"]]
    if r["same"] is None:
        low = ", ".join(f"{n} {q['quality']:.4f}" for n, q in zip(names, r["quality"]) if gate.too_low(q))
        print(f"similarity {r['similarity']:.4f}: {CANNOT_DECIDE} (quality {low} < {gate.threshold:.4g})")
    else:
        verdict = "same person" if r["same"] else "different people"
        op = ">=" if r["same"] else "<"
        print(f"similarity {r['similarity']:.4f} {op} {r['decision']['threshold']:.4g}: {verdict}")
    print(f"  {r['decision']['text']}")
    if any(r["quality"]):
        rated = ", ".join(f"{n} {q['quality']:.4f} (norm {q['norm']:.2f})" for n, q in zip(names, r["quality"]))
        print(f"  face quality: {rated}; {gate.text}")


if __name__ == "__main__":
    sys.exit(main())
