"""``facematch-calibrate``: a model's operating points on labelled pairs, stored with the model.

    facematch-calibrate                                   # mobilefacenet + its default weights, LFW pairs.txt
    facematch-calibrate --weights W.ckpt --far 1e-3 1e-2  # a bare backbone: <calibration dir>/<sha256>.json
    facematch-calibrate --ckpt outputs/runs/train/.../last.ckpt --data lfw_aligned112   # stored in the checkpoint

The pairs (LFW View 2 ``pairs.txt`` by default, or a ``pathA pathB label`` list) are embedded by the one
evaluation job (:func:`facematch.eval.verification.verify`: the ``data`` config's crops, raw photos
detected and aligned as ``facematch-compare`` aligns them, the embedding cache), scored by raw cosine as
``facematch-compare`` and the gallery score, and the thresholds at each ``--far`` and at the best accuracy
are computed (:func:`facematch.calibration.compute.calibrate`). The calibration goes inside a checkpoint, or for a bare
weights file into ``$FACEMATCH_CALIBRATION_DIR/<sha256>.json`` (``--out`` names another file); see
:mod:`facematch.calibration.store` for where compare and the gallery look.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from facematch.app.model_args import add_model_arguments, load_model
from facematch.utils.allocator import tune as tune_allocator
from facematch.errors import FacematchError, cli_errors, debug_enabled


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facematch-calibrate",
                                description="Thresholds of a model at target false-accept rates on labelled pairs, "
                                            "stored with the model for facematch-compare and facematch-gallery.")
    add_model_arguments(p, faces=False)
    p.add_argument("--data", default="lfw_photos",
                   help="data config of the pairs' images (conf/data: lfw_photos = raw photos, detected and aligned; "
                        "lfw_aligned112 = the reference crops); default lfw_photos")
    p.add_argument("--root", default=None, help="image folder (default: the data config's root)")
    p.add_argument("--pairs", default=None, help="labelled pairs: LFW pairs.txt (default) or a 'pathA pathB label' list")
    p.add_argument("--far", type=float, nargs="+", default=[1e-3],
                   help="target false-accept rates (default: 1e-3); the first is the default operating point")
    p.add_argument("--default", default=None,
                   help="default operating point: far_<rate> or best_accuracy (default: the first --far)")
    p.add_argument("--out", default=None, help="write the calibration JSON here instead")
    p.add_argument("--dry-run", action="store_true", help="print the operating points, store nothing")
    p.add_argument("--json", action="store_true", help="print the calibration as JSON")
    return p


def compose_eval(args: argparse.Namespace):
    """The ``eval`` config for the pairs (data group, root, pairs, device, precision, runtime, flip)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from facematch.config import config_dir
    from facematch.utils.renamed import check_overrides

    overrides = [f"data={args.data}", f"protocol.flip={args.flip}", f"embed.device={args.device}",
                 f"embed.precision={args.precision}", f"embed.runtime={args.runtime}", "embed.progress=true"]
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.pairs:
        overrides.append(f"data.pairs={args.pairs}")
    check_overrides(overrides)
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="calibrate"):
            cfg = compose("eval", overrides=overrides)
    except Exception as err:  # hydra's own message names the bad value
        raise FacematchError(f"bad option: {str(err).splitlines()[0]}") from None
    with open_dict(cfg):
        cfg.hydra = None
    return cfg


def calibrate(args: argparse.Namespace):
    """``(model, calibration)`` for the parsed arguments (the work is :func:`facematch.calibration.compute.calibrate`)."""
    from facematch.calibration.compute import calibrate as compute

    for far in args.far:
        if not 0.0 < far < 1.0:
            raise FacematchError(f"--far {far:g} is not a rate in (0, 1)")
    cfg = compose_eval(args)
    model = load_model(args)
    return model, compute(model, cfg, args.far, args.default)


def store(args: argparse.Namespace, model, cal) -> str:
    from facematch.calibration.store import write_into_checkpoint, write_sidecar

    if args.out or not args.ckpt:
        return str(write_sidecar(cal, args.out))
    return str(write_into_checkpoint(args.ckpt, cal))


@cli_errors
def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    if not debug_enabled():
        warnings.filterwarnings("ignore")
    model, cal = calibrate(args)
    where = None if args.dry_run else store(args, model, cal)
    if args.json:
        print(json.dumps({**cal.as_dict(), "stored": where}, indent=2))
        return 0
    print(f"facematch-calibrate: {cal.settings['arch']} ({model.description.get('kind')}, sha256 "
          f"{cal.fingerprint[:12]}...), {cal.data['n_pairs']} pairs of {cal.data['pairs']}")
    for name, p in cal.points.items():
        mark = "*" if name == cal.default else ("+" if name == cal.search_default else " ")
        rest = (f"DIR {p['tar']:.4f}  gallery of {p['gallery_size']}, {p['n_known']} known / {p['n_impostors']} "
                "impostor probes" if p["rule"] == "open_set" else f"TAR {p['tar']:.4f}  accuracy {p['accuracy']:.4f}")
        print(f" {mark} {name:<22} threshold {p['threshold']:.4f}  FAR {p['far']:.4f}  {rest}")
    d = cal.points[cal.default]
    print(f"  (* default of facematch-compare, on {d['n_different']} different / {d['n_same']} same pairs; "
          "+ default of a gallery search)")
    print(f"  stored: {where}" if where else "  not stored (--dry-run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
