"""``metrics.json`` of a facematch-eval run: the verification report, identification, and what ran (model,
engine as resolved, data, command), assembled in one place (:func:`job_metrics`); and the table printed from
it (:func:`summary_table`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from facematch.config import to_container
from facematch.data.pair_files import sniff_format
from facematch.eval.verification import Protocol, Verification
from facematch.utils.hardware import machine_info


def _overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:
        return []


def job_metrics(cfg: DictConfig, res: Verification, ident: dict, model, protocol: Protocol, source,
                pairs_file: str, figures: dict, plots_s: float) -> dict[str, Any]:
    """The metrics a facematch-eval run writes: the verification report, the identification figures, the
    engine as it ran (``res.ran``: the embedder's settings resolved once, so the recorded precision is the
    one that ran), the model, the data and the command."""
    embed_stats = res.embed_stats
    metrics: dict[str, Any] = dict(res.report)
    metrics.update({k: ident[k] for k in ("rank_1", "rank_5", "knn_accuracy") if k in ident})
    metrics.update({k: v for k, v in (ident.get("template") or {}).items() if k.startswith("template_rank_")})
    metrics.update({
        "identification": ident,
        "n_images": len(res.paths),
        "embedding_cache_hit": bool(embed_stats.get("cache_hit")),
        "embedding_cache": {k: v for k, v in embed_stats.items() if k not in ("embed_s", "protocol_s")}
        | {"key": embed_stats.get("cache_key")},
        "model": model.description,
        "arch": model.spec.name,
        "flip": protocol.flip,
        "protocol": protocol.as_dict(),
        "precision": res.ran["precision"],
        "device": res.ran["device"],
        "runtime": res.ran["runtime"],
        "machine": machine_info(),
        "preprocess": source.key,
        "data": {"root": str(cfg.data.root), "pairs": pairs_file, "format": sniff_format(pairs_file),
                 "n_folds": int(len(np.unique(res.folds)))},
        "plots": sorted(figures),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "overrides": _overrides(),
        "config": to_container(cfg),
        "timings": {"embed_s": embed_stats.get("embed_s"), "protocol_s": embed_stats.get("protocol_s"),
                    "plots_s": plots_s},
    })
    return metrics


def summary_table(m: dict, out_dir: Path) -> str:
    def pct(x):
        return f"{100 * x:6.2f}%" if isinstance(x, (int, float)) else "   n/a"

    model = m.get("model", {})
    ec = m.get("embedding_cache", {})
    ident = m.get("identification", {})
    cache = "cache hit" if m.get("embedding_cache_hit") else f"{ec.get('computed', 0)} computed, {ec.get('cache_hits', 0)} cached"
    lines = [
        f"facematch-eval: {model.get('arch')} ({model.get('kind')}), {m['preprocess']}, flip {m['flip']}, "
        f"{m['precision']} on {m['device']}",
        f"  pairs / images       {m['n_pairs']} / {m['n_images']}  ({m['data']['n_folds']} folds)",
        f"  10-fold accuracy     {pct(m['accuracy_mean'])} ± {100 * m['accuracy_std']:.2f}  "
        f"({m['distance']}{', mean subtracted' if m['subtract_mean'] else ''})",
        "  fold accuracies      " + " ".join(f"{100 * a:.2f}" for a in m["fold_accuracies"]),
    ]
    for k in sorted(k for k in m if k.startswith("val_at_far_") and not k.endswith("_threshold")):
        lines.append(f"  VAL @ FAR {k[len('val_at_far_'):]:<9} {pct(m[k])}")
    lines += [
        f"  AUC / EER            {m['auc']:.4f} / {pct(m['eer']).strip()}",
        f"  acc / F1 @ cos {m['threshold']:<5g} {pct(m['accuracy_at_threshold'])} / {m['f1_at_threshold']:.4f}",
        f"  best-F1 threshold    {m['best_f1_threshold']:.3f} (F1 {m['best_f1']:.4f})",
    ]
    if "rank_1" in ident:
        lines.append(f"  Rank-1 / Rank-5 / kNN {pct(ident['rank_1'])} / {pct(ident['rank_5'])} / {pct(ident['knn_accuracy'])}"
                     f"  ({ident['n_probes']} probes, {ident['n_gallery_identities']} identities)")
    template = ident.get("template") or {}
    if "template_rank_1" in template:
        lines.append(f"  template Rank-1 / 5  {pct(template['template_rank_1'])} / {pct(template['template_rank_5'])}"
                     f"  (nearest of {template['n_templates']} templates, {template['n_probes']} probes)")
    emb_s = (m.get("timings") or {}).get("embed_s") or 0.0
    lines += [
        f"  embeddings           {m['n_images']} in {emb_s:.1f} s ({cache})",
        f"  wall time            {m.get('seconds', 0.0):.1f} s",
        f"  output               {out_dir / 'metrics.json'}",
    ]
    return "\n".join(lines)
