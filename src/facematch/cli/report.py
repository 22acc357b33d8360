"""``facematch-report``: gather ``metrics.json`` from runs and multiruns into one Markdown table.

Two kinds of result are read:
- an evaluation run (``facematch-eval``): its 10-fold figures are used as they are;
- a per-fold training multirun (``facematch-train -m data.test_fold=0,...,9 ...``): job k trained on the
  people outside fold k and scored fold k only (``fold`` / ``fold_accuracy`` / ``fold_scores`` in its
  metrics.json). The ten jobs of one configuration are combined into one row: accuracy mean ± std over
  the folds, and VAL@FAR, F1 and accuracy at the fixed threshold on the pooled fold scores, each pair
  scored by the model that never saw its people.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from facematch.errors import FacematchError, cli_errors
from facematch.eval.metrics import score_metrics

COLUMNS = ["exp", "data", "arch", "pretrained on", "loss", "margin", "optimizer", "scheduler", "10-fold acc ± std",
           "VAL@FAR=1e-3", "F1@0.6", "acc@0.6", "undegraded acc", "Rank-5 / kNN", "final loss", "wall time",
           "model kept"]

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
    from facematch.faces.degrade import Degradation

    degrade = Degradation.from_config(data.get("degrade"))
    return (name + {"align": " (own alignment)", "center": " (centre crop)"}.get(mode, "")
            + (f" @ {degrade.name()}" if degrade is not None else ""))


def _arch(arch: dict, trained: bool) -> str:
    """The backbone and what of it trained: frozen (head only), the last N stages, or all of it (full)."""
    name = str(arch.get("name", "?"))
    if not trained:
        return name
    if not arch.get("freeze"):
        return f"{name} (full)"
    n = int(arch.get("unfreeze_last") or 0)
    return f"{name} (frozen)" if n == 0 else f"{name} (last {n})"


def describe(cfg: dict) -> dict:
    """The table's configuration columns, from a run's resolved Hydra config."""
    arch = cfg.get("arch") or {}
    trained = bool(cfg.get("loss")) and cfg.get("task_name") != "eval"
    # the option names the loss and miner configs record (conf/loss/*.yaml, conf/miner/*.yaml)
    loss_name = str(cfg.get("loss_name") or "—")
    if cfg.get("miner_name") not in (None, "none"):
        loss_name += f" ({cfg['miner_name']})"
    sched = cfg.get("scheduler") or {}
    return {
        "exp": cfg.get("exp_name") or cfg.get("task_name") or "?",
        "data": _data(cfg),
        "arch": _arch(arch, trained),
        "pretrained on": _pretrained(arch),
        "loss": loss_name if trained else "— (no training)",
        "margin": f"{cfg.get('margin')}" if trained else "—",
        "optimizer": (_short((cfg.get("optimizer") or {}).get("_target_")) + f" lr={cfg['optimizer'].get('lr')}") if trained else "—",
        "scheduler": (_short(sched.get("_target_")) if sched else "none") if trained else "—",
    }


def _load_run(metrics_path: Path) -> tuple[dict, dict] | None:
    cfg_path = metrics_path.parent / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    return cfg, metrics


def _fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


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
    # identification among each fold's own (unseen) people, averaged over the folds
    ident = [m["identification"] for m in jobs if "rank_5" in (m.get("identification") or {})]
    if len(ident) == len(jobs):
        extra.update(rank_5=float(np.mean([i["rank_5"] for i in ident])),
                          knn_accuracy=float(np.mean([i["knn_accuracy"] for i in ident])))
    losses = [(m.get("train_metrics") or {}).get("train/loss_epoch") for m in jobs]
    if all(v is not None for v in losses):
        extra["final_loss"] = float(np.mean(losses))
    return {
        **extra,
        "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()), "n_folds": len(jobs),
        "val_at_far_1e-3": pooled["val_at_far_1e-3"],
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
            desc = describe(cfg)
            if "fold" in metrics:
                key = (str(mpath.parent.parent), tuple(desc.items()))
                fold_groups[key].append({**metrics, "_threshold": (cfg.get("protocol") or {}).get("threshold", cfg.get("threshold", 0.6)),
                                         "_published": _published(cfg)})
            else:
                # the config columns win over same-named metrics.json keys (an eval's "data" block)
                rows.append({**metrics, **desc, "n_folds": len(metrics.get("fold_accuracies", [])), "_path": str(mpath),
                             "val_scores": "protocol" if metrics.get("ranking_scores") == "protocol" else "raw cosine"})
    for (parent, desc), jobs in fold_groups.items():
        row = {**dict(desc), **combine_folds(jobs, jobs[0]["_threshold"]), "_path": parent}
        if jobs[0].get("_published") is not None:
            row["published"] = jobs[0]["_published"]
        rows.append(row)
    return rows


def _published(cfg: dict) -> dict | None:
    """The published figures a row's config carries for its margin (``published.rows``, e.g. the second
    original table in ``conf/experiment/scratch_resnet50.yaml``): ``{"source", "margin", figures...}``, an
    empty figure set where nothing was published for this margin, None where the config has no table."""
    table = cfg.get("published") or {}
    if not table.get("rows"):
        return None
    margin = cfg.get("margin")
    rows = table["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("margin"), (int, float)) for r in rows):
        raise FacematchError("published.rows in a run's config must be a list of {margin: <number>, <figure>: "
                             "<fraction>, ...}; fix conf/experiment/<row>.yaml (see scratch_resnet50.yaml)")
    match = next((r for r in rows if margin is not None and abs(float(r["margin"]) - float(margin)) < 1e-9), {})
    return {**{k: v for k, v in match.items() if k != "margin"}, "source": table.get("source", "published")}


def _identification(r: dict) -> str:
    """Rank-5 / kNN: per-fold rows measure among each fold's own people (mean over folds), an evaluation
    among all the people of its pairs file, a harder gallery, marked "(all)"."""
    if r.get("rank_5") is None:
        return "—"
    return f"{_fmt_pct(r['rank_5'])} / {_fmt_pct(r.get('knn_accuracy'))}" + ("" if "kept" in r else " (all)")


def _undegraded(r: dict) -> str:
    if r.get("undegraded_accuracy_mean") is not None:
        return f"{_fmt_pct(r['undegraded_accuracy_mean'])} ± {_fmt_pct(r['undegraded_accuracy_std'])}"
    return "—"


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in sorted(rows, key=lambda r: (r["exp"], str(r["margin"]))):
        acc = f"{_fmt_pct(r.get('accuracy_mean'))} ± {_fmt_pct(r.get('accuracy_std'))}"
        if r.get("n_folds") not in (None, 10):
            acc += f" ({r['n_folds']} folds)"
        cells = [r["exp"], r["data"], r["arch"], r["pretrained on"], r["loss"], r["margin"], r["optimizer"], r["scheduler"], acc,
                 _fmt_pct(r.get("val_at_far_1e-3")) + (" (raw cos)" if r.get("val_scores") == "raw cosine" else ""),
                 _fmt_pct(r.get("f1_at_threshold")),
                 _fmt_pct(r.get("accuracy_at_threshold")), _undegraded(r),
                 _identification(r),
                 f"{r['final_loss']:.4f}" if r.get("final_loss") is not None else "—",
                 _fmt_time(r.get("seconds")), r.get("kept", "—")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    published = [r for r in rows if r.get("published") is not None]
    if published:
        lines += ["", published_markdown(published)]
    return "\n".join(lines)


PUBLISHED_COLUMNS = [("pair acc", "accuracy_mean", "pair_accuracy"), ("kNN", "knn_accuracy", "knn_accuracy"),
                     ("Rank-5", "rank_5", "rank_5"), ("final loss", "final_loss", "final_loss")]


def published_markdown(rows: list[dict]) -> str:
    """Rows whose config carries published figures, each figure next to ours ("ours / published"). Ours
    are over the folds the row ran (pair accuracy: the 10-fold protocol's mean over them; kNN and Rank-5:
    among each fold's own people)."""
    sources = sorted({r["published"]["source"] for r in rows})
    head = ["exp", "arch", "margin", "folds"] + [f"{name} (ours / published)" for name, _, _ in PUBLISHED_COLUMNS]
    lines = [f"Next to the published figures ({'; '.join(sources)}):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(key: str, x) -> str:
        if x is None:
            return "—"
        return f"{x:.4f}" if key == "final_loss" else _fmt_pct(x)

    for r in sorted(rows, key=lambda r: (r["exp"], str(r["margin"]))):
        pub = r["published"]
        cells = [r["exp"], r["arch"], r["margin"], str(r.get("n_folds", "—"))]
        cells += [f"{fmt(ours, r.get(ours))} / {fmt(ours, pub.get(theirs))}" for _, ours, theirs in PUBLISHED_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="facematch-report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run or multirun directories (searched recursively)")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--benchmark", action="store_true",
                    help="one row per model, one column per set (facematch.cli.benchmark_table)")
    ap.add_argument("--tar-far", type=float, default=None, help="--benchmark: also TAR at this FAR, e.g. 1e-3")
    args = ap.parse_args(argv)
    if args.benchmark:
        from facematch.cli.benchmark_table import write_benchmark

        return write_benchmark(args.runs, _load_run, args.tar_far, args.out, args.json)
    rows = collect(args.runs)
    if not rows:
        raise FacematchError(f"no metrics.json with a .hydra/config.yaml under {', '.join(map(str, args.runs))}")
    table = markdown(rows)
    print(table)
    from facematch.utils.io import atomic_write_text

    if args.out:
        atomic_write_text(args.out, table + "\n")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=2, default=float) + "\n")



if __name__ == "__main__":
    sys.exit(main())
