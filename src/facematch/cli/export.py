"""``facematch-export``: a model -> an ONNX file that carries the preprocessing it needs.

    facematch-export --out mobilefacenet.onnx                       # mobilefacenet, $FACEMATCH_WEIGHTS_DIR weights
    facematch-export --arch mobilefacenet --weights W.ckpt --out m.onnx --opset 18
    facematch-export --ckpt outputs/runs/train/.../checkpoints/last.ckpt --out model.onnx
    facematch-compare a.jpg b.jpg --onnx m.onnx                     # then run it with onnxruntime
    facematch-eval onnx_path=m.onnx data=lfw_aligned112

The file computes what ``facematch-eval`` scores (a bare backbone's features, or a checkpoint's backbone +
head projection) with a dynamic batch axis; its metadata (:mod:`facematch.models.onnx_export`) holds the
input size, layout, mean/std on 0..1 RGB, alignment template, embedding size, the PyTorch weights'
fingerprint and the model's calibration (or says there is none). ``--check`` (default) reloads the written
file, runs it with onnxruntime and PyTorch on a few synthetic crops and fails when their embeddings differ
by more than :data:`facematch.models.inference.MAX_COSINE_GAP` in cosine. Errors: one ``error:`` line.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch

from facematch.app.model_args import add_weights_arguments, check_model_file, load_model
from facematch.utils.allocator import tune as tune_allocator
from facematch.errors import FacematchError, cli_errors, debug_enabled


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facematch-export",
                                description="Export a model to ONNX (dynamic batch) with its preprocessing, "
                                            "fingerprint and calibration in the file's metadata.")
    add_weights_arguments(p, onnx=False)
    p.add_argument("--out", required=True, help="the ONNX file to write (replaced atomically)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, recorded in the file)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="compare onnxruntime with PyTorch on synthetic crops after writing (default: on)")
    return p


def cosine_gap(model, onnx_model, n: int = 3, seed: int = 0) -> float:
    """Largest ``1 - cosine`` between PyTorch's and onnxruntime's outputs on ``n`` random crops."""
    from facematch.embedding.embedder import normalize_batch

    g = torch.Generator().manual_seed(seed)
    crops = torch.randint(0, 256, (n, *model.spec.input_size, 3), generator=g, dtype=torch.uint8)
    x = normalize_batch(crops, model.spec)
    with torch.inference_mode():
        ref, out = model.module.eval()(x), onnx_model.module(x)
    return float(1 - torch.nn.functional.cosine_similarity(out.double(), ref.double(), dim=1).min())


def summary(ex, gap: float | None) -> list[str]:
    from facematch.calibration.store import Calibration

    m = ex.metadata
    h, w = m["input_size"]

    def fmt(v):
        return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"

    lines = [
        f"wrote {ex.path} ({ex.size / 2**20:.1f} MiB): {m['arch']}, opset {m['opset']}, {m['exporter']}",
        f"  input      N x 3 x {h} x {w} float32 ({m['input_layout']}, RGB): (x / 255 - mean {fmt(m['mean'])}) / std {fmt(m['std'])}",
        f"  template   {m['template']}",
        f"  output     {m['embedding_dim']}-d {m['description'].get('output', 'features')}",
        f"  weights    fingerprint {m['fingerprint'][:16]}... ({m['description'].get('kind')})",
    ]
    if m["calibration"] is not None:
        lines.append(f"  decision   {Calibration.from_dict(m['calibration']).describe()}")
    else:
        lines.append(f"  decision   {m['calibration_status']}")
    if gap is not None:
        from facematch.models.inference import MAX_COSINE_GAP

        lines.append(f"  check      onnxruntime vs PyTorch, 3 synthetic crops: max cosine gap {gap:.2e} (limit {MAX_COSINE_GAP:g})")
    return lines


@cli_errors
def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    if not debug_enabled():
        warnings.filterwarnings("ignore")
    if args.opset is not None and args.opset < 1:
        raise FacematchError(f"--opset {args.opset} is not an ONNX opset")
    check_model_file(args)
    model = load_model(args)
    from facematch.calibration.store import find_calibration
    from facematch.models.onnx_export import export_model

    cal, notes = find_calibration(model)
    ex = export_model(model, args.out, opset=args.opset, calibration=cal, calibration_notes=notes)
    gap = None
    if args.check:
        from facematch.models.inference import MAX_COSINE_GAP
        from facematch.models.onnx_file import load_onnx_model

        gap = cosine_gap(model, load_onnx_model(ex.path))
        if not gap <= MAX_COSINE_GAP:
            ex.path.unlink(missing_ok=True)
            raise FacematchError(f"onnxruntime's embeddings differ from PyTorch's by cosine {gap:.2e} "
                                 f"(> {MAX_COSINE_GAP:g}); {ex.path} removed; try another --opset")
    print("\n".join(summary(ex, gap)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
