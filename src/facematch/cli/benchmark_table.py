"""``facematch-report --benchmark``: evaluation runs as papers print them, one row per model and one column per
verification set (LFW, CFP-FP, AgeDB-30, ... as ``.bin`` files or any other set), each cell the 10-fold
accuracy ± std and, with ``--tar-far``, TAR (VAL) at that FAR.

    facematch-eval -m data=bin data.path=lfw.bin,cfp_fp.bin arch.weights=W
    facematch-eval -m data=bin data.path=lfw.bin,cfp_fp.bin onnx_path=other.onnx embed.input.size=112 ...
    facematch-report multirun/ --benchmark --tar-far 1e-3 --json results/benchmark_table.json

A set is named by its file or folder (``lfw.bin`` -> ``lfw``; with ``data.degrade``, ``lfw @ res16``); a model by its experiment name, else its
backbone and weights file, ONNX file or checkpoint; when the runs used more than one protocol, by that too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from facematch.errors import FacematchError

#: The keys of a cell in the JSON rendering.
CELL_KEYS = ("accuracy_mean", "accuracy_std", "n_folds")


def set_name(cfg: dict, metrics: dict) -> str:
    """The column: the evaluated file or folder (the root as the run resolved it, config interpolations done),
    and its degradation when ``data.degrade`` made one (``lfw @ res16``)."""
    from facematch.data.degrade import Degradation

    root = Path(str((metrics.get("data") or {}).get("root") or (cfg.get("data") or {}).get("root") or "?"))
    degrade = Degradation.from_config((cfg.get("data") or {}).get("degrade"))
    return (root.stem if root.suffix == ".bin" else root.name) + (f" @ {degrade.name()}" if degrade else "")


def model_name(cfg: dict, metrics: dict) -> str:
    """The row label: the experiment name when the run has one, else what the model was loaded from."""
    if cfg.get("exp_name"):
        return str(cfg["exp_name"])
    m = metrics.get("model") or {}
    if m.get("kind") == "onnx":
        return Path(str(m.get("onnx_path"))).name
    if m.get("kind") == "checkpoint" or m.get("ckpt_path"):
        return Path(str(m.get("ckpt_path"))).name
    weights = m.get("weights") or (cfg.get("arch") or {}).get("weights")
    arch = m.get("arch") or (cfg.get("arch") or {}).get("name") or "?"
    return f"{arch} ({Path(str(weights)).name})" if weights else f"{arch} (random init)"


def protocol_name(p: dict) -> str:
    return (f"flip {p.get('flip')}, {p.get('distance')}{', mean subtracted' if p.get('subtract_mean') else ''}"
            + (f", grid {p['threshold_grid']}" if p.get("threshold_grid") else ""))


def benchmark(runs: list[tuple[dict, dict]], tar_far: float | None = None) -> dict:
    """``{"sets", "tar_far", "rows": [{"model", "cells": {set: {accuracy_mean, accuracy_std, n_folds, val_at_far_X?}}}]}``
    from ``(config, metrics)`` of evaluation runs; two runs of one model on one set are refused."""
    runs = [(c, m) for c, m in runs if "fold_accuracies" in m]
    if not runs:
        raise FacematchError("no evaluation run (facematch-eval metrics.json) found for the benchmark table")
    protocols = {protocol_name(m.get("protocol") or {}) for _, m in runs}
    from facematch.eval.metrics import far_key

    tar_far = far_key(float(tar_far)) if tar_far else None
    key = f"val_at_far_{tar_far}" if tar_far else None
    table: dict[str, dict[str, dict]] = {}
    for cfg, m in runs:
        name = model_name(cfg, m) + (f" [{protocol_name(m.get('protocol') or {})}]" if len(protocols) > 1 else "")
        cells = table.setdefault(name, {})
        s = set_name(cfg, m)
        if s in cells:
            raise FacematchError(f"two runs of {name} on {s}; pass one run per model and set to facematch-report")
        if key and key not in m:
            far = tar_far
            raise FacematchError(f"a run of {name} on {s} has no TAR at FAR={far}; evaluate with protocol.fars "
                                 f"including {far}, or leave out --tar-far")
        cells[s] = {"accuracy_mean": m["accuracy_mean"], "accuracy_std": m["accuracy_std"],
                    "n_folds": len(m["fold_accuracies"]), **({key: m[key]} if key else {})}
    sets = sorted({s for cells in table.values() for s in cells})
    return {"sets": sets, "tar_far": tar_far,
            "rows": [{"model": k, "cells": table[k], "text": {s: cell_text(table[k].get(s), tar_far) for s in sets}}
                     for k in sorted(table)]}


def cell_text(c: dict | None, far: str | None) -> str:
    """``acc ± std`` (%), ``/ TAR`` when asked, ``—`` where a model lacks a set."""
    if c is None:
        return "—"
    text = f"{100 * c['accuracy_mean']:.2f} ± {100 * c['accuracy_std']:.2f}"
    return text + (f" / {100 * c[f'val_at_far_{far}']:.2f}" if far else "")


def markdown(bench: dict) -> str:
    """The table of :func:`benchmark` (each cell :func:`cell_text`); a docs table renders its ``rows[].text``."""
    far = bench["tar_far"]
    unit = f"acc ± std / TAR@FAR={far} (%)" if far else "acc ± std (%)"
    head = ["model", *bench["sets"]]
    lines = [f"10-fold verification accuracy, {unit}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in bench["rows"]:
        lines.append("| " + " | ".join([row["model"], *(row["text"][s] for s in bench["sets"])]) + " |")
    return "\n".join(lines)


def write_benchmark(roots: list[Path], load_run: Callable, tar_far: float | None, out: Path | None,
                    json_out: Path | None, provenance: dict | None = None) -> None:
    """Print the table of the runs under ``roots`` (``load_run``: metrics.json -> (config, metrics) or None,
    for runs whose metrics.json does not hold their config); also write it to ``out`` (Markdown) and its data
    to ``json_out``, with ``provenance`` (command, commit, machine)."""
    from facematch.utils.io import atomic_write_text

    for root in roots:
        if not root.exists():
            raise FacematchError(f"no such run directory: {root}")
    runs = [run for root in roots for run in map(lambda p: _run(p, load_run), sorted(root.rglob("metrics.json"))) if run]
    bench = benchmark(runs, tar_far)
    table = markdown(bench)
    print(table)
    if out:
        atomic_write_text(out, table + "\n")
    if json_out:
        atomic_write_text(json_out, json.dumps({**bench, "provenance": provenance} if provenance else bench,
                                               indent=2) + "\n")


def _run(path: Path, load_run: Callable) -> tuple[dict, dict] | None:
    """``(config, metrics)`` of one run: an evaluation's metrics.json holds its resolved config."""
    metrics = json.loads(path.read_text())
    return (metrics["config"], metrics) if isinstance(metrics.get("config"), dict) else load_run(path)
