"""``facematch-report``: gather ``metrics.json`` from runs and multiruns into one Markdown table.

Two kinds of result are read:
- an evaluation run (``facematch-eval``): its 10-fold figures are used as they are;
- a per-fold training multirun (``facematch-train -m data.test_fold=0,...,9 ...``): job k trained on the
  people outside fold k and scored fold k only (``fold`` / ``fold_accuracy`` / ``fold_scores`` in its
  metrics.json). The ten jobs of one configuration are combined into one row: accuracy mean ± std over
  the folds, and VAL@FAR, F1 and accuracy at the fixed threshold on the pooled fold scores, each pair
  scored by the model that never saw its people.

``--json results/NAME.json`` keeps the rows (with the command and the machine they ran on) as the file
docs tables render; ``--docs`` / ``--check`` re-render or check those tables (``facematch/report/docs.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from facematch.utils.allocator import tune as tune_allocator
from facematch.errors import FacematchError, cli_errors
from facematch.eval.cross_quality import combine_fold_figures
from facematch.eval.metrics import score_metrics
from facematch.report.provenance import stamp
from facematch.report.published import for_config
from facematch.report.docs import REPORT_KIND, markdown_files, rewrite, stale
from facematch.report.runs import batches, machine, training_budget
from facematch.report.table import markdown

WEIGHT_NAMES = {"mobilefacenet_casia": "CASIA-WebFace", "vggface2": "VGGFace2", "casia-webface": "CASIA-WebFace"}


def _short(target: str | None) -> str:
    return target.rsplit(".", 1)[-1] if target else "—"


def _pretrained(arch: dict) -> str:
    src = str(arch.get("weights") or arch.get("pretrained") or "")
    if not src:
        return "none (random init)"
    for key, name in WEIGHT_NAMES.items():
        if key in Path(src).name.lower() or key == src:
            return name
    return Path(src).name


def _data(cfg: dict) -> str:
    """Which images a row was scored on: the data root's name, and whether facematch aligned them itself."""
    data = cfg.get("data") or {}
    name = Path(str(data.get("root") or "?")).name
    mode = (data.get("preprocess") or {}).get("mode")
    # raw photos are detected and aligned before scoring (embed.align_raw); runs written before the
    # embed group existed: facematch-eval aligned (eval.align_raw), per-fold scoring used centre crops
    old_default = (cfg.get("eval") or {}).get("align_raw", True) if cfg.get("task_name") == "eval" else False
    if mode == "center" and (cfg.get("embed") or {}).get("align_raw", old_default):
        mode = "align"
    from facematch.data.degrade import Degradation, degrade_side

    degrade = Degradation.from_config(data.get("degrade"))
    originals = degrade is not None and (data.get("features") or {}).get("originals")  # trained on both
    one_side = degrade is not None and degrade_side(data.get("degrade")) == "second"  # the cross-quality protocol
    return (name + {"align": " (own alignment)", "center": " (centre crop)"}.get(mode, "")
            + (f" @ {degrade.name()}" if degrade is not None else "") + (" (2nd image only)" if one_side else "")
            + (" + originals" if originals else ""))


def _arch(arch: dict, trained: bool) -> str:
    """The backbone and what of it trained: frozen (head only), the last N stages, or all of it (full)."""
    name = str(arch.get("name", "?"))
    if not trained:
        return name
    if not arch.get("freeze"):
        return f"{name} (full)"
    n = int(arch.get("unfreeze_last") or 0)
    return f"{name} (frozen)" if n == 0 else f"{name} (last {n})"


def describe(cfg: dict, run: Path) -> dict:
    """The table's configuration columns, from a run's resolved Hydra config (and, for the batches, what the
    run in folder ``run`` recorded)."""
    arch = cfg.get("arch") or {}
    trained = bool(cfg.get("loss")) and cfg.get("task_name") != "eval"
    # the option names the loss and miner configs record (conf/loss/*.yaml, conf/miner/*.yaml)
    loss_name = str(cfg.get("loss_name") or "—")
    if cfg.get("miner_name") not in (None, "none"):
        loss_name += f" ({cfg['miner_name']})"
    weights = (cfg.get("distill_loss") or {}).get("weights") or {}
    if weights:  # distill=term: the distillation term beside the loss, with its weights where not 1
        w_main, w_dist = float(weights.get("main", 1.0)), float(weights.get("distill", 1.0))
        loss_name = (f"{w_main:g} x " if w_main != 1 else "") + loss_name + " + " + \
            (f"{w_dist:g} x " if w_dist != 1 else "") + "distill"
    sched = cfg.get("scheduler") or {}
    return {
        "exp": cfg.get("exp_name") or cfg.get("task_name") or "?",
        "data": _data(cfg),
        "arch": _arch(arch, trained),
        "pretrained on": _pretrained(arch),
        "loss": loss_name if trained else "— (no training)",
        # the top-level margin, where the loss reads it (distillation alone has none)
        "margin": f"{cfg.get('margin')}" if trained and "${margin}" in json.dumps(cfg.get("loss")) else "—",
        "optimizer": _optimizer(cfg.get("optimizer") or {}) if trained else "—",
        "scheduler": (_short(sched.get("_target_")) if sched else "none") if trained else "—",
        "batches": batches(cfg, run) if trained else "—",
    }


def _optimizer(opt: dict) -> str:
    """``Adam lr=0.001``, and the weight decay where it is not zero."""
    wd = float(opt.get("weight_decay") or 0)
    return f"{_short(opt.get('_target_'))} lr={opt.get('lr')}" + (f" wd={wd:g}" if wd else "")


def _load_run(metrics_path: Path) -> tuple[dict, dict] | None:
    cfg_path = metrics_path.parent / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    return cfg, metrics


def template_means(templates: list[dict]) -> dict:
    """The FaceNet rows' nearest-template Rank-1 / Rank-5, each averaged over the folds, when every fold has
    them (no half-made means)."""
    keys = ("template_rank_1", "template_rank_5")
    if not templates or not all(all(k in t for k in keys) for t in templates):
        return {}
    return {k: float(np.mean([t[k] for t in templates])) for k in keys}


def combine_folds(jobs: list[dict], threshold: float) -> dict:
    """One row from per-fold jobs: fold accuracies, pooled fold scores for the global metrics."""
    jobs = sorted(jobs, key=lambda m: m["fold"])
    folds = [m["fold"] for m in jobs]
    if len(set(folds)) != len(folds):
        raise FacematchError(f"duplicate folds {folds} in one configuration; pass one multirun per configuration")
    acc = np.array([m["fold_accuracy"] for m in jobs])
    scores = np.concatenate([m["fold_scores"] for m in jobs])
    same = np.concatenate([m["fold_same"] for m in jobs]).astype(bool)
    # VAL on the scores the protocol used (mean subtracted), as facematch-eval reports it; jobs written
    # before fold_protocol_scores existed fall back to raw cosine, and the row says so
    ranked_ok = all("fold_protocol_scores" in m for m in jobs)
    ranked = np.concatenate([m["fold_protocol_scores"] for m in jobs]) if ranked_ok else scores
    pooled = score_metrics(scores, ranked, same, threshold=threshold, fars=(1e-3,))
    # degraded data: each fold's model also scored on the original crops (what adaptation forgets)
    clean = [m["undegraded"]["fold_accuracy"] for m in jobs if m.get("undegraded")]
    extra = {"undegraded_accuracy_mean": float(np.mean(clean)), "undegraded_accuracy_std": float(np.std(clean))} \
        if len(clean) == len(jobs) else {}
    extra.update(combine_fold_figures(jobs))  # one side degraded (facematch.eval.cross_quality)
    # identification among each fold's own (unseen) people, averaged over the folds
    ident = [m["identification"] for m in jobs if "rank_5" in (m.get("identification") or {})]
    if len(ident) == len(jobs):
        extra.update(rank_5=float(np.mean([i["rank_5"] for i in ident])),
                          knn_accuracy=float(np.mean([i["knn_accuracy"] for i in ident])))
    extra.update(template_means([(m.get("identification") or {}).get("template") or {} for m in jobs]))
    seen = [m.get("_images_seen") for m in jobs]
    if all(v is not None for v in seen):  # training images drawn per job (the same budget in every fold)
        extra["images_seen"] = int(np.mean(seen))
    if len(jobs) == 1 and jobs[0].get("_val_auc"):  # one job (the CPU rows): its learning curve
        extra["val_auc_per_epoch"] = ", ".join(f"{v:.3f}" for v in jobs[0]["_val_auc"])
    losses = [(m.get("train_metrics") or {}).get("train/loss_epoch") for m in jobs]
    if all(v is not None for v in losses):
        extra["final_loss"] = float(np.mean(losses))
    return {
        **extra,
        "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()), "n_folds": len(jobs),
        "auc": pooled["auc"], "val_at_far_1e-3": pooled["val_at_far_1e-3"],
        "val_scores": "protocol" if ranked_ok else "raw cosine",
        "f1_at_threshold": pooled["f1_at_threshold"], "accuracy_at_threshold": pooled["accuracy_at_threshold"],
        "seconds": float(sum(m.get("seconds", 0.0) for m in jobs)),
        # how often validation preferred the untrained starting point over every trained epoch
        "kept": f"start on {sum(m.get('selected') == 'initial' for m in jobs)}/{len(jobs)} folds",
    }


def collect(roots: list[Path]) -> list[dict]:
    rows, fold_groups = [], defaultdict(list)
    for root in roots:
        if not root.exists():
            raise FacematchError(f"no such run directory: {root}")
        for mpath in sorted(root.rglob("metrics.json")):
            loaded = _load_run(mpath)
            if loaded is None:
                continue
            cfg, metrics = loaded
            desc = describe(cfg, mpath.parent)
            if "fold" in metrics:
                key = (str(mpath.parent.parent), tuple(desc.items()))
                fold_groups[key].append({**metrics, **training_budget(mpath.parent, cfg), "_threshold": (cfg.get("protocol") or {}).get("threshold", cfg.get("threshold", 0.6)),
                                         "_published": for_config(cfg), "_machine": machine(mpath.parent, metrics)})
            else:
                # the config columns win over same-named metrics.json keys (an eval's "data" block)
                row = {**metrics, **desc, "n_folds": len(metrics.get("fold_accuracies", [])), "_path": str(mpath),
                       "val_scores": "protocol" if metrics.get("ranking_scores") == "protocol" else "raw cosine"}
                pub = for_config(cfg)
                if pub is not None:  # an evaluation set beside a published row (exp1_pretrained_irv1)
                    row["published"] = pub
                rows.append(row)
    for (parent, desc), jobs in fold_groups.items():
        row = {**dict(desc), **combine_folds(jobs, jobs[0]["_threshold"]), "_path": parent}
        if jobs[0].get("_published") is not None:
            row["published"] = jobs[0]["_published"]
        if jobs[0].get("_machine") is not None:
            row["machine"] = jobs[0]["_machine"]
        rows.append(row)
    return rows


@cli_errors
def main(argv: list[str] | None = None) -> None:
    tune_allocator()
    ap = argparse.ArgumentParser(prog="facematch-report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run or multirun directories (searched recursively)")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON (results/NAME.json, what docs tables render)")
    ap.add_argument("--docs", type=Path, nargs="+", metavar="PATH",
                    help="re-render every marked table in these Markdown files / folders from its JSON file")
    ap.add_argument("--check", type=Path, nargs="+", metavar="PATH",
                    help="exit 1 naming every marked table that differs from its rendering and every figure "
                         "neither rendered nor marked quoted")
    ap.add_argument("--republish", type=Path, nargs="+", metavar="FILE",
                    help="rewrite the published figures of these results files from facematch/report/published.yaml "
                         "(for files whose run folders are gone; nothing else in them changes)")
    ap.add_argument("--stamp", type=Path, nargs="+", metavar="FILE",
                    help="add the provenance block (command, commit, machine) to results files written before it "
                         "existed, from what each records and its git history")
    ap.add_argument("--command", dest="stamp_command", help="--stamp: the command, where the file does not record it")
    ap.add_argument("--commit", dest="stamp_commit", help="--stamp: the commit, where the file does not record it")
    ap.add_argument("--machine", dest="stamp_machine", help="--stamp: the machine, where the file does not record it")
    ap.add_argument("--table", help="--republish: the published table of rows that do not name one yet")
    ap.add_argument("--root", type=Path, default=Path("."), help="the folder the markers' JSON paths start from")
    ap.add_argument("--benchmark", action="store_true",
                    help="one row per model, one column per set (facematch.cli.benchmark_table)")
    ap.add_argument("--tar-far", type=float, default=None, help="--benchmark: also TAR at this FAR, e.g. 1e-3")
    args = ap.parse_args(argv)
    if args.republish or args.stamp:
        from facematch.report.files import republish_files, stamp_files

        if args.republish:
            republish_files(args.republish, args.table)
        if args.stamp:
            stamp_files(args.stamp, args.stamp_command, args.stamp_commit, args.stamp_machine)
        return
    if args.docs or args.check:
        docs(args.docs or [], args.check or [], args.root)
        return
    if not args.runs:
        ap.error("name run directories, or --docs / --check PATH")
    if args.benchmark:
        from facematch.cli.benchmark_table import write_benchmark

        command = "facematch-report " + " ".join(sys.argv[1:] if argv is None else argv)
        return write_benchmark(args.runs, _load_run, args.tar_far, args.out, args.json, stamp(command))
    rows = collect(args.runs)
    if not rows:
        raise FacematchError(f"no metrics.json with a .hydra/config.yaml under {', '.join(map(str, args.runs))}")
    table = markdown(rows)
    print(table)
    from facematch.utils.io import atomic_write_text

    if args.out:
        atomic_write_text(args.out, table + "\n")
    if args.json:
        command = "facematch-report " + " ".join(sys.argv[1:] if argv is None else argv)
        doc = {"kind": REPORT_KIND, "command": command, "runs": [str(r) for r in args.runs], "rows": rows,
               "provenance": stamp(command)}
        atomic_write_text(args.json, json.dumps(doc, indent=2, default=float) + "\n")


def docs(rewrite_paths: list[Path], check_paths: list[Path], root: Path) -> None:
    """``--docs``: rewrite the marked tables and values; ``--check``: list those that differ, and every figure
    that is neither rendered from a traceable results file nor marked quoted (facematch.report.trace), and
    exit 1."""
    from facematch.utils.io import atomic_write_text

    for md in markdown_files(rewrite_paths):
        text = md.read_text()
        new = rewrite(text, root)
        if new != text:
            atomic_write_text(md, new)
            print(f"rewrote {md}")
    from facematch.report.trace import untraced

    differ = stale(markdown_files(check_paths), root) + untraced(markdown_files(check_paths), root)
    if differ:
        print("\n".join(differ))
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
