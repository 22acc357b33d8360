"""``facematch-eval``: a composed ``eval`` config -> the one evaluation job -> outputs in the run dir.

Model (``ckpt_path``, ``onnx_path`` or ``arch``), pairs (``data.pairs``: LFW ``pairs.txt`` or a ``pathA pathB label``
list), crops (:func:`eval_source`: raw photos are aligned when ``embed.align_raw``) and ``protocol`` go
to :func:`facematch.eval.verification.verify`; this module adds identification (Rank-1/5, kNN), the
figures (ROC, F1 curve, score histogram, t-SNE), TensorBoard, ``metrics.json`` and a table on stdout.

Sharded over several processes (the images split across them, the metrics those of one process; rank 0
writes the outputs)::

    torchrun --nproc-per-node=2 -m facematch.eval.run arch=mobilefacenet arch.weights=W data=lfw_aligned112 \
        data.root=D/lfw-aligned-112 data.pairs=D/lfw/pairs.txt hydra.run.dir=OUT
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from facematch.config import check_config, instantiate_node, to_container, write_json
from facematch.data.identities import missing_root_error
from facematch.data.pair_files import identity_of, read_pairs, sniff_format
from facematch.errors import FacematchError
from facematch.eval import cross_jobs
from facematch.models.loading import load_model
from facematch.eval.sharding import is_rank_zero, process_group_from_env
from facematch.eval.template_pool import template_figures
from facematch.eval.verification import Protocol, Verification, verify
from facematch.data.bin_set import is_bin
from facematch.data.shards import is_url
from facematch.data.source import FaceSource, source_from_config
from facematch.utils.hardware import machine_info

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def eval_source(cfg: DictConfig, template: str, *, degraded: bool = True) -> FaceSource:
    """The crops ``facematch-eval`` and per-fold scoring score for ``cfg.data`` (the same for both): raw
    photos are aligned with the ``align`` group's settings when ``embed.align_raw``; ``data.degrade``
    applies (draw 0) unless ``degraded`` is false (the original crops)."""
    root = str(cfg.data.root) if is_url(cfg.data.root) else Path(cfg.data.root)  # a packed set may be a URL
    if isinstance(root, Path) and not root.is_dir() and not is_bin(root):  # a .bin file is a set of its own
        raise missing_root_error(root)
    return source_from_config(root, template, cfg.data.get("preprocess"), align_raw=bool(cfg.embed.align_raw),
                              degrade=cfg.data.get("degrade") if degraded else None)


def engine_settings(cfg: DictConfig, progress: bool | None = None) -> dict:
    e = dict(_plain(cfg.embed))
    if progress is not None:
        e["progress"] = progress
    return e


def _overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:
        return []


def _output_dir(cfg: DictConfig) -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:
        return Path(cfg.paths.output_dir)


# ---------------------------------------------------------------------------------------------------


def evaluate(cfg: DictConfig) -> dict:
    """Run one evaluation from a composed ``eval`` config; returns the metrics written to metrics.json.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) a process group is set up for the job and the images are embedded
    across the ranks (:mod:`facematch.eval.sharding`); only rank 0 writes the outputs and prints the table
    (the other ranks return the verification report)."""
    with process_group_from_env(cfg.embed.get("device")):
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict:
    t0 = time.perf_counter()
    check_config(cfg)
    from facematch.data.lfw_files import ensure_lfw
    from facematch.data.xqlfw import ensure_xqlfw

    ensure_lfw(cfg.data.get("root"), cfg.data.get("pairs"))  # LFW read from the data folder: fetched when missing
    ensure_xqlfw(cfg.data.get("root"), cfg.data.get("pairs"))  # XQLFW: never fetched, one line when missing
    protocol: Protocol = instantiate_node(cfg.protocol)
    out_dir = _output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.data.get("pairs"):
        raise FacematchError("data.pairs is not set; pass data.pairs=PATH (LFW pairs.txt or a 'pathA pathB label' list)")
    if cfg.eval.get("align") is not None:  # the pre-`align`-group name: it would be ignored
        raise FacematchError("eval.align.* is now align.* (conf/align/mtcnn.yaml, shared with training), e.g. align.select=largest")
    model = load_model(cfg.get("ckpt_path"), _plain(cfg.arch), cfg.get("onnx_path"), _plain(cfg.embed.get("input")))
    spec = model.spec
    source = eval_source(cfg, spec.template)
    pairs_file = str(cfg.data.pairs)
    pairs = read_pairs(pairs_file, n_folds=int(protocol.n_folds))
    log.info("%d pairs, preprocessing %s", len(pairs), source.key)
    engine = engine_settings(cfg)
    one_side = cross_jobs.side(cfg) == "second"  # one side degraded: the cross figures
    if one_side and source.degrade is None:
        raise FacematchError("data.degrade.side=second degrades the second image of each pair, but data.degrade "
                             "changes nothing; set e.g. data.degrade.resolution=16")
    res = verify(model, pairs, source, protocol, engine, what=pairs_file)
    cross: dict[str, Any] = {}
    if one_side:
        res, cross = cross_jobs.eval_cross(pairs, res, eval_source(cfg, spec.template, degraded=False), model,
                                           protocol, engine, pairs_file)
    if not is_rank_zero():  # sharded: rank 0 writes everything
        return dict(res.report)
    emb, paths, embed_stats = res.emb, res.paths, res.embed_stats

    ident: dict[str, Any] = {}
    labels = np.array([identity_of(p) for p in paths])
    if cfg.eval.identification:
        from facematch.eval.identification import identification_report

        try:
            with warnings.catch_warnings():  # sklearn warns that many classes look like regression targets
                warnings.simplefilter("ignore", UserWarning)
                ident = identification_report(emb, labels, seed=int(cfg.seed))
        except ValueError as err:
            ident = {"skipped": str(err)}
        ident["template"] = template_figures(cfg, model, source, engine, emb, paths, protocol.flip)

    t2 = time.perf_counter()
    figures = make_plots(out_dir, res, emb, labels, cfg, protocol) if cfg.eval.plots else {}
    plots_s = time.perf_counter() - t2
    device, precision = embed_stats["device"], embed_stats["precision"]  # as the embeddings were computed
    metrics: dict[str, Any] = dict(res.report) | cross
    metrics.update({k: ident[k] for k in ("rank_1", "rank_5", "knn_accuracy") if k in ident})
    metrics.update({k: v for k, v in (ident.get("template") or {}).items() if k.startswith("template_rank_")})
    metrics.update({
        "identification": ident,
        "n_images": len(paths),
        "embedding_cache_hit": bool(embed_stats.get("cache_hit")),
        "embedding_cache": {k: v for k, v in embed_stats.items() if k not in ("embed_s", "protocol_s")}
        | {"key": embed_stats.get("cache_key")},
        "model": model.description,
        "arch": spec.name,
        "flip": protocol.flip,
        "protocol": protocol.as_dict(),
        "precision": precision,
        "device": device,
        "runtime": embed_stats.get("runtime"),
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
    if cfg.eval.tensorboard:
        t3 = time.perf_counter()
        write_tensorboard(out_dir / "tensorboard", metrics, res, emb, labels, figures, cfg, source, paths)
        metrics["timings"]["tensorboard_s"] = time.perf_counter() - t3
    write_pair_scores(out_dir / "pair_scores.tsv", pairs, res)
    metrics["seconds"] = time.perf_counter() - t0
    write_json(out_dir / "metrics.json", metrics)
    print(summary_table(metrics, out_dir), flush=True)
    return metrics


# ---------------------------------------------------------------------------------------------------
# plots, TensorBoard, table


def make_plots(out_dir: Path, res: Verification, emb, labels, cfg: DictConfig, protocol: Protocol) -> dict:
    """``{name: Figure}`` for roc / f1_threshold / score_histogram / tsne, each also written as PNG.

    The ROC is drawn from ``ranked`` (the protocol scores, as AUC and VAL are computed); the F1 curve
    and the histogram from the raw cosine ``scores``, on the scale of the fixed threshold."""
    from facematch.eval import plots

    thr, scores, ranked, same, fars = float(protocol.threshold), res.cosine, res.ranked, res.same, protocol.fars
    figs = {
        "roc": plots.roc_plot(ranked, same, out_dir / "roc.png", fars=fars, title=f"ROC ({cfg_name(cfg)})"),
        "f1_threshold": plots.f1_plot(scores, same, out_dir / "f1_threshold.png", threshold=thr),
        "score_histogram": plots.score_histogram(scores, same, out_dir / "score_histogram.png", threshold=thr),
    }
    n_ids = int(cfg.eval.tsne_identities or 0)
    if n_ids > 0:
        try:
            figs["tsne"] = plots.tsne_plot(emb, labels, n_ids, out_dir / "tsne.png", seed=int(cfg.seed))
        except ValueError as err:
            log.warning("t-SNE skipped: %s", err)
    return figs


def cfg_name(cfg: DictConfig) -> str:
    return Path(str(cfg.data.root)).name


def write_tensorboard(log_dir: Path, metrics: dict, res: Verification, emb, labels, figures: dict, cfg: DictConfig,
                      source, paths: list[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from facematch.eval.projector import add_projector

    if log_dir.is_dir():  # a re-run into the same run dir replaces its TensorBoard data (as metrics.json)
        shutil.rmtree(log_dir)
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                writer.add_scalar(f"eval/{k}", float(v), 0)
        for i, acc in enumerate(metrics.get("fold_accuracies", [])):
            writer.add_scalar("eval/fold_accuracy", float(acc), i)
        for name, fig in figures.items():
            writer.add_figure(f"eval/{name}", fig, 0, close=False)
        same, scores = res.same, res.cosine
        writer.add_histogram("eval/similarity_same", scores[same], 0)
        writer.add_histogram("eval/similarity_different", scores[~same], 0)
        writer.add_text("eval/summary", "```\n" + summary_table(metrics, log_dir.parent) + "\n```", 0)
        n_ids = int(cfg.eval.tsne_identities or 0)
        if n_ids > 0 and len(paths):
            add_projector(writer, emb, labels, source, paths, n_ids)
    finally:
        writer.close()


def write_pair_scores(path: Path, pairs, res: Verification) -> None:
    """One line per pair, in the pairs file's order: both paths, label, fold, raw cosine, protocol score and
    the protocol's decision (1: same; the score against its fold's threshold)."""
    from facematch.utils.io import atomic_write_text

    lines = ["a\tb\tsame\tfold\tcosine\tprotocol_score\tdecision"]
    lines += [f"{p.a}\t{p.b}\t{int(s)}\t{int(f)}\t{c:.9g}\t{r:.9g}\t{int(d)}"
              for p, s, f, c, r, d in zip(pairs, res.same, res.folds, res.cosine, res.ranked, res.decisions())]
    atomic_write_text(path, "\n".join(lines) + "\n")


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
