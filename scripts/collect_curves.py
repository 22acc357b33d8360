"""Learning curves and final figures of a training multirun, per job, into one JSON (and Markdown tables).

Reads every job folder of ``RUN`` (``<RUN>/<n>/``: ``.hydra/overrides.yaml``, ``learning_curves.json``,
``train_metrics.json``) and writes ``--out``: per job the overrides that tell the jobs apart (e.g. the
margin), its curve per epoch (training loss, active-triplet fraction, validation template accuracy and
loss) and its final figures (last epoch, and the epoch the checkpoint kept), with the run's wall time and
machine; the published figures the run's config carries (``published.rows``) for comparison. ``--markdown``
prints the tables docs/facenet.md shows, rendered from that JSON alone.

    python scripts/collect_curves.py outputs/multiruns/train/<time> --out results/seed2_facenet_cpu.json --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from facematch.errors import FacematchError, cli_errors
from facematch.utils.io import atomic_write_text

CURVE_KEYS = {"train_loss": "train/loss_epoch", "active_fraction": "train/active_triplets",
              "val_template_rank_1": "val/template_rank_1", "val_template_rank_5": "val/template_rank_5",
              "val_loss": "val/loss"}


def job_result(job: Path, monitor: str) -> dict:
    overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
    curve = [{"epoch": r["epoch"], **{k: r.get(v) for k, v in CURVE_KEYS.items()}}
             for r in json.loads((job / "learning_curves.json").read_text()) if r["epoch"] >= 0]
    if not curve:
        raise FacematchError(f"{job}/learning_curves.json has no epoch yet; wait for the run's first epoch")
    trained = json.loads((job / "train_metrics.json").read_text()) if (job / "train_metrics.json").is_file() else {}
    key = "val_" + monitor.removeprefix("val/")
    best = max(curve, key=lambda r: r[key] if r[key] is not None else -1.0)
    return {"overrides": overrides, "curve": curve, "last": curve[-1], "kept": best,
            "seconds": trained.get("seconds"), "machine": trained.get("machine"), "finished": bool(trained)}


def collect(run: Path) -> dict:
    jobs = sorted((p for p in run.iterdir() if (p / "learning_curves.json").is_file()), key=lambda p: int(p.name))
    if not jobs:
        raise FacematchError(f"no job folder with learning_curves.json under {run}")
    cfg = yaml.safe_load((jobs[0] / ".hydra" / "config.yaml").read_text())
    return {"run": str(run), "exp_name": cfg.get("exp_name"), "monitor": cfg.get("monitor"),
            "published": (cfg.get("published") or {}).get("rows", []),
            "jobs": [job_result(j, cfg.get("monitor", "val/template_rank_1")) for j in jobs]}


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _num(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def markdown(result: dict) -> str:
    """The final-figures table (one row per job, the published figures beside) and the curves table."""
    pub = {float(r["margin"]): r for r in result["published"]}
    lines = ["| margin | epochs | final train loss | active fraction (last epoch) | val template acc (kept epoch) "
             "| val template Rank-5 (kept) | wall time | published template acc / Rank-5 (LFW) / loss (LFW) |",
             "|---|---|---|---|---|---|---|---|"]
    for job in result["jobs"]:
        margin = float(job["overrides"].get("margin", "nan"))
        p = pub.get(margin, {})
        published = (f"{_pct(p.get('template_rank_1'))} / {_pct(p.get('template_rank_5'))} / {_num(p.get('final_loss'))}"
                     if p else "—")
        wall = f"{job['seconds'] / 60:.1f} min" if job["seconds"] else "(running)"
        lines.append(f"| {margin:g} | {len(job['curve'])} | {_num(job['last']['train_loss'])} | "
                     f"{_num(job['last']['active_fraction'])} | {_pct(job['kept']['val_template_rank_1'])} (epoch "
                     f"{job['kept']['epoch']}) | {_pct(job['kept']['val_template_rank_5'])} | {wall} | {published} |")
    lines += ["", "| margin | epoch | train loss | active fraction | val template acc | val template Rank-5 | val loss |",
              "|---|---|---|---|---|---|---|"]
    for job in result["jobs"]:
        for r in job["curve"]:
            lines.append(f"| {float(job['overrides'].get('margin', 'nan')):g} | {r['epoch']} | {_num(r['train_loss'])} | "
                         f"{_num(r['active_fraction'])} | {_pct(r['val_template_rank_1'])} | "
                         f"{_pct(r['val_template_rank_5'])} | {_num(r['val_loss'])} |")
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a multirun folder (its job folders 0, 1, ...)")
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write")
    ap.add_argument("--markdown", action="store_true", help="also print the tables")
    args = ap.parse_args(argv)
    result = collect(args.run)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
