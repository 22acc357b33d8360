"""Learning curves and final figures of a training multirun, per job, into one JSON.

Reads every job folder of ``RUN`` (``<RUN>/<n>/``: ``.hydra/overrides.yaml``, ``learning_curves.json``,
``train_metrics.json``) and writes ``--out``: ``final``, one row per job (its margin, the last epoch's
training loss and active-triplet fraction, the validation template accuracy of the epoch the checkpoint
kept, the wall time, and the published figures the run's config carries for that margin), and ``curves``,
one row per job and epoch; the machine the run recorded. docs/facenet.md's tables render these lists
(``<!-- table: ... -->`` markers, facematch.report.docs).

    python scripts/collect_curves.py outputs/multiruns/train/<time> --out results/seed2_facenet_cpu.json \
        --command "facematch-train -m experiment=seed2_facenet_cpu"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from facematch.errors import FacematchError, cli_errors
from facematch.report.provenance import stamp
from facematch.report.published import for_config, for_key
from facematch.utils.io import atomic_write_text

CURVE_KEYS = {"train_loss": "train/loss_epoch", "active_fraction": "train/active_triplets",
              "val_template_rank_1": "val/template_rank_1", "val_template_rank_5": "val/template_rank_5",
              "val_loss": "val/loss"}


def job_rows(job: Path, monitor: str, published: str | None) -> tuple[dict, list[dict], dict | None]:
    """One job: its final row (last epoch; the epoch the checkpoint kept, by ``monitor``; the published
    figures for its margin, from the table ``published`` names), its curve rows (one per epoch) and the
    machine it recorded."""
    overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
    margin = float(overrides["margin"]) if "margin" in overrides else None
    curve = [{"margin": margin, "epoch": r["epoch"], **{k: r.get(v) for k, v in CURVE_KEYS.items()}}
             for r in json.loads((job / "learning_curves.json").read_text()) if r["epoch"] >= 0]
    if not curve:
        raise FacematchError(f"{job}/learning_curves.json has no epoch yet; wait for the run's first epoch")
    trained = json.loads((job / "train_metrics.json").read_text()) if (job / "train_metrics.json").is_file() else {}
    key = "val_" + monitor.removeprefix("val/")
    kept = max(curve, key=lambda r: -1.0 if r[key] is None else r[key])
    final = {"margin": margin, "epochs": len(curve), "train_loss": curve[-1]["train_loss"],
             "active_fraction": curve[-1]["active_fraction"], "kept_epoch": kept["epoch"],
             "val_template_rank_1": kept["val_template_rank_1"], "val_template_rank_5": kept["val_template_rank_5"],
             "minutes": trained["seconds"] / 60 if trained.get("seconds") else None,
             **scored(job),
             "published": for_key(published, margin) if published else None, "overrides": overrides}
    return final, curve, trained.get("machine")


def scored(job: Path) -> dict:
    """The held-out fold's figures of a job that scored it (``evaluate=true``): pair accuracy under the 10-fold
    protocol, and the nearest-template Rank-1 / Rank-5 among that fold's people; empty without ``metrics.json``."""
    if not (job / "metrics.json").is_file():
        return {}
    m = json.loads((job / "metrics.json").read_text())
    template = m.get("identification", {}).get("template", {})
    return {"pair_accuracy": m.get("fold_accuracy"), "test_template_rank_1": template.get("template_rank_1"),
            "test_template_rank_5": template.get("template_rank_5"), "test_templates": template.get("n_templates")}


def collect(run: Path, command: str) -> dict:
    jobs = sorted((p for p in run.iterdir() if (p / "learning_curves.json").is_file()), key=lambda p: int(p.name))
    if not jobs:
        raise FacematchError(f"no job folder with learning_curves.json under {run}")
    cfg = yaml.safe_load((jobs[0] / ".hydra" / "config.yaml").read_text())
    published = (for_config(cfg) or {}).get("table")
    monitor = cfg.get("monitor", "val/template_rank_1")
    out = {"kind": "learning-curves", "command": command, "run": str(run), "exp_name": cfg.get("exp_name"),
           "monitor": monitor, "published_table": published, "final": [], "curves": [], "machine": None}
    for job in jobs:
        final, curve, machine = job_rows(job, monitor, published)
        out["final"].append(final)
        out["curves"] += curve
        out["machine"] = out["machine"] or machine
    return out


@cli_errors
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a multirun folder (its job folders 0, 1, ...)")
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write")
    ap.add_argument("--command", default="", help="the command that made the run, kept in the JSON")
    args = ap.parse_args(argv)
    doc = collect(args.run, args.command)
    this = "python scripts/collect_curves.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc["provenance"] = stamp("; ".join(filter(None, [args.command, this])))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
