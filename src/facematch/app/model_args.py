"""The model options of the practitioner commands (compare, calibrate, gallery, export, app), in one place.

``--arch NAME [--weights W]`` (a bare backbone of the registry, :mod:`facematch.models.backbones`; the
weights it declares as its default are looked up in ``$FACEMATCH_WEIGHTS_DIR``), ``--ckpt C`` (a ``facematch-train`` checkpoint) or ``--onnx FILE`` (a
``facematch-export`` file, run by onnxruntime), how it runs (``--device``,
``--precision``, ``--runtime``, ``--flip``), MTCNN's ``--min-face-size``, and the decision threshold: the
model's calibrated operating point (:mod:`facematch.calibration.store`) unless ``--threshold`` overrides it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facematch.errors import FacematchError, WeightsError
from facematch.models.backbones import BACKBONES, declaration
from facematch.models.backbones import default_weights as default_weights_file
from facematch.utils.hardware import DEFAULT_PRECISION, PRECISIONS

def add_weights_arguments(p: argparse.ArgumentParser, *, onnx: bool = True) -> None:
    """Which model: ``--arch [--weights]``, ``--ckpt`` and (``onnx``) ``--onnx``."""
    p.add_argument("--arch", default="mobilefacenet", help="backbone (default: mobilefacenet; one of: "
                   f"{', '.join(BACKBONES)})")
    defaults = ", ".join(f"{n}: $FACEMATCH_WEIGHTS_DIR/{d.default_weights}" for n, d in BACKBONES.items()
                         if d.default_weights)
    p.add_argument("--weights", default=None, help=f"backbone weights file (default for {defaults})")
    p.add_argument("--ckpt", default=None, help="a facematch-train checkpoint (backbone + head); overrides --arch")
    if onnx:
        p.add_argument("--onnx", default=None, metavar="FILE",
                       help="a model exported by facematch-export (or any ONNX face model with --input-* stated), "
                       "run by onnxruntime; overrides --arch and --ckpt")
        g = p.add_argument_group("input of an ONNX model without facematch metadata (e.g. insightface's model zoo)")
        g.add_argument("--input-size", type=int, nargs="+", default=None, metavar="N", help="H W, or one number (e.g. 112)")
        g.add_argument("--input-mean", type=float, nargs="+", default=None, metavar="M",
                       help="on the 0..255 pixel scale, one number or one per channel (e.g. 127.5)")
        g.add_argument("--input-std", type=float, nargs="+", default=None, metavar="S", help="likewise (e.g. 127.5)")
        g.add_argument("--input-channels", default="RGB", choices=("RGB", "BGR"), help="channel order (default RGB)")
        g.add_argument("--input-template", default="arcface_112x112",
                       help="alignment of its training crops (default arcface_112x112)")


def add_model_arguments(p: argparse.ArgumentParser, *, faces: bool = True) -> None:
    add_weights_arguments(p)
    p.add_argument("--flip", choices=("none", "sum", "concat"), default="concat",
                   help="flip test, as facematch-eval's protocol.flip (default: concat)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs (default: auto, the GPU when there is one)")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="fp32 (default): the same scores on every machine, as calibrated; bf16: faster where the "
                        "hardware has it natively, scores differ slightly; auto: bf16 only where it is native")
    p.add_argument("--runtime", default="auto", help="inference runtime: auto | eager | fused | jit | onnx (default: auto; "
                        "onnx: through onnxruntime)")
    if faces:
        p.add_argument("--min-face-size", type=int, default=20, help="smallest face searched, pixels (default: 20)")


def add_threshold_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine threshold for 'same' (default: the model's calibrated operating point, "
                        "see facematch-calibrate)")
    p.add_argument("--operating-point", default=None,
                   help="which calibrated point to use, e.g. far_1e-3 or best_accuracy (default: the "
                        "calibration's default)")


def default_weights(arch: str, weights: str | None) -> str:
    """``weights``, or the backbone's default file in ``$FACEMATCH_WEIGHTS_DIR``."""
    if weights:
        return weights
    from facematch.paths import weights_dir

    name = default_weights_file(arch)
    if name is None:
        raise WeightsError(f"no default weights for {arch}; pass --weights PATH or --ckpt PATH")
    path = weights_dir() / name
    if not path.is_file():  # a default that is not there: say how to point at it
        raise WeightsError(
            f"weights file not found: {path}; pass --weights PATH or set FACEMATCH_WEIGHTS_DIR to the folder holding {name}"
        )
    return str(path)


def check_model_file(args: argparse.Namespace) -> str | None:
    """The weights file to use (None with --ckpt or --onnx); a missing file or unknown backbone fails here,
    before any detection or model building."""
    if getattr(args, "onnx", None):
        if not Path(args.onnx).expanduser().is_file():
            raise WeightsError(f"ONNX model not found: {args.onnx} (--onnx FILE written by facematch-export)")
        return None
    if args.ckpt:
        if not Path(args.ckpt).expanduser().is_file():
            raise WeightsError(f"checkpoint not found: {args.ckpt} (--ckpt PATH to a facematch-train .ckpt file)")
        return None
    declaration(args.arch)  # an unknown backbone: one line naming the known ones
    weights = default_weights(args.arch, args.weights)
    if not Path(weights).expanduser().is_file():
        raise WeightsError(f"weights file not found: {weights} (check --weights PATH)")
    return weights


def load_model(args: argparse.Namespace):
    """The :class:`~facematch.models.base.EvalModel` the options name."""
    from facematch.models.loading import build_arch_model, load_checkpoint_model

    weights = check_model_file(args)
    if getattr(args, "onnx", None):
        from facematch.models.onnx_file import load_onnx_model

        return load_onnx_model(args.onnx, stated_input(args))
    return load_checkpoint_model(args.ckpt) if args.ckpt else build_arch_model(args.arch, weights)


def stated_input(args: argparse.Namespace) -> dict:
    """The ``--input-*`` options as ``embed.input`` (:mod:`facematch.models.onnx_stated`)."""
    def one(v):
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    return {"size": one(args.input_size), "mean": one(args.input_mean), "std": one(args.input_std),
            "channels": args.input_channels, "template": args.input_template}


def face_embedder(args: argparse.Namespace, model):
    """The :class:`~facematch.embedding.photos.FaceEmbedder` of ``model`` with the options' settings."""
    from facematch.embedding.photos import FaceEmbedder
    from facematch.models.inference import check_runtime

    return FaceEmbedder(model, flip=args.flip, device=args.device, precision=args.precision,
                        runtime=check_runtime(args.runtime), min_face_size=getattr(args, "min_face_size", 20))


def decision_threshold(args: argparse.Namespace, model, settings: dict, *, search: bool = False) -> dict:
    """``{"threshold", "source", "operating_point"?, "far"?, "tar"?, "text"}``: ``--threshold`` when given,
    else the model's calibrated operating point (for a gallery ``search``, its 1:N point when it has one: a
    1:1 threshold lets a stranger's best match in a gallery of N people pass far more often than its FAR);
    no calibration stops with one line saying how to make one."""
    from facematch.calibration.store import find_calibration

    if args.threshold is not None:
        t = float(args.threshold)
        if not -1.0 <= t <= 1.0:
            raise FacematchError(f"--threshold {t:g} is not a cosine in [-1, 1]")
        return {"threshold": t, "source": "--threshold", "text": f"threshold {t:g} (--threshold)"}
    cal, notes = find_calibration(model)
    why = cal.mismatch(settings) if cal is not None else None
    if cal is None or why:
        d = model.description
        what = d.get("onnx_path") or d.get("ckpt_path") or d.get("weights") or model.spec.name
        reason = f" ({why})" if why else (f" ({notes[0]})" if notes else "")
        how = {"checkpoint": f"--ckpt {what}", "onnx": f"--onnx {what}"}.get(
            d.get("kind"), f"--arch {model.spec.name} --weights {what}")
        raise FacematchError(
            f"{what} has no calibrated threshold{reason}; make one with `facematch-calibrate {how}` "
            "or pass --threshold T"
        )
    name = getattr(args, "operating_point", None) or ((cal.search_default if search else None) or cal.default)
    p = cal.point(name)
    return {"threshold": float(p["threshold"]), "source": "calibration", "operating_point": p["name"],
            "far": p["far"], "tar": p["tar"], "calibration": cal.origin, "text": cal.describe(p["name"])}
