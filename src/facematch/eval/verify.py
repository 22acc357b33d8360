"""The evaluation job behind ``facematch-eval``: model -> pairs -> cached embeddings -> protocol -> outputs.

1. Model: ``ckpt_path`` (backbone + head rebuilt from a training checkpoint) or the ``arch`` config
   (:mod:`facematch.eval.model`).
2. Pairs: ``data.pairs``, LFW ``pairs.txt`` (folds as in the file) or a ``pathA pathB label`` list (split
   into ``eval.n_folds`` contiguous folds); paths relative to ``data.root``.
3. Crops: a :class:`~facematch.faces.source.FaceSource` in the backbone's template. Raw photos
   (``data.preprocess.mode=center``, the training default of ``data=lfw``) are detected and aligned for
   evaluation when ``eval.align_raw`` is true (the default); ``prealigned`` data is read as it is.
4. Embeddings of the distinct images, once, through the on-disk cache (:mod:`facematch.eval.embed`).
5. :func:`facematch.eval.protocol.verification_report` (10-fold accuracy, VAL@FAR, AUC, EER, fixed-
   threshold accuracy / F1, best-F1 threshold), identification (Rank-1/5, kNN) and t-SNE.
6. Outputs in the run dir: ``metrics.json``, ``roc.png``, ``f1_threshold.png``, ``score_histogram.png``,
   ``tsne.png``, ``tensorboard/`` (scalars, the figures, score histograms, the embedding projector), and a
   short table on stdout.
"""

from __future__ import annotations

import json
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

from facematch.config import to_container, write_json
from facematch.data.identities import missing_root_error
from facematch.data.protocols import identity_of, pair_arrays, read_pairs, sniff_format
from facematch.errors import FacematchError
from facematch.eval.embed import Embedder, check_flip, make_cache_key, resolve
from facematch.utils.hardware import machine_info
from facematch.models.loading import EvalModel, load_model
from facematch.faces.source import FaceSource

log = logging.getLogger(__name__)

#: ``eval.distance`` names -> :mod:`facematch.eval.protocol` distance names.
DISTANCE_ALIASES = {"cosine": "cosine", "sq_l2": "neg_sq_l2", "squared_l2": "neg_sq_l2", "l2": "neg_sq_l2",
                    "neg_sq_l2": "neg_sq_l2"}


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_source(data: DictConfig | dict, template: str, align_raw: bool = True,
                 align: DictConfig | dict | None = None) -> FaceSource:
    """The FaceSource for ``data.root`` in ``template``.

    ``center`` (raw photos) becomes ``align`` when ``align_raw``, with the detector settings and aligned-crop
    cache folder of ``align`` (``eval.align``: ``select``, ``cache_dir``, and any other
    :class:`~facematch.faces.detect.DetectorSettings` field) replacing the data config's centre-crop ones.
    ``prealigned`` and an explicit ``align`` are used as the data config says.
    """
    pp = dict(_plain(data.get("preprocess")) or {})
    mode = pp.pop("mode", "center")
    src_template = pp.pop("template", None)
    if mode == "center" and align_raw:
        mode = "align"
        pp.pop("center_crop", None)
        pp.update({k: v for k, v in (_plain(align) or {}).items() if v is not None})
    return FaceSource(data["root"], template, mode=mode, src_template=src_template, **pp)


def resolve_distance(name: str) -> str:
    try:
        return DISTANCE_ALIASES[str(name)]
    except KeyError:
        raise FacematchError(f"eval.distance={name!r} is unknown; choose cosine or sq_l2") from None


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
    """Run one evaluation from a composed ``eval`` config; returns the metrics written to metrics.json."""
    t0 = time.perf_counter()
    ev = cfg.eval
    out_dir = _output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    flip = check_flip(str(ev.flip))
    distance = resolve_distance(ev.distance)
    if not cfg.data.get("pairs"):
        raise FacematchError("data.pairs is not set; pass data.pairs=PATH (LFW pairs.txt or a 'pathA pathB label' list)")

    model = load_model(cfg.get("ckpt_path"), _plain(cfg.arch))
    spec = model.spec
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise missing_root_error(root)
    source = build_source(cfg.data, spec.template, bool(ev.align_raw), ev.get("align"))

    pairs_file = str(cfg.data.pairs)
    pairs = read_pairs(pairs_file, n_folds=int(ev.n_folds))
    rels = list(dict.fromkeys(r for p in pairs for r in (p.a, p.b)))
    log.info("%d pairs, %d distinct images, preprocessing %s", len(pairs), len(rels), source.key)

    # -- embeddings -------------------------------------------------------------------------------------
    device, precision = resolve(ev.device, ev.precision)
    key, comp = make_cache_key(model.fingerprint, source, spec, flip=flip, bf16=precision == "bf16")
    embedder = Embedder(
        model.module, spec, source, batch_size=int(ev.batch_size), num_workers=ev.num_workers, flip=flip,
        precision=precision, device=device, runtime=str(ev.runtime), cache_dir=ev.cache_dir if ev.cache else None,
        cache_key=key, cache_meta=comp, progress=bool(ev.progress),
    )
    emb, paths = embedder.embed(rels)
    embed_stats = dict(embedder.stats)
    ia, ib, same, folds = pair_arrays(pairs, paths)

    # -- verification -----------------------------------------------------------------------------------
    from facematch.eval import protocol

    t1 = time.perf_counter()
    fars = tuple(float(f) for f in ev.fars)
    try:
        report, ranked = protocol.verification_report(
            emb[ia], emb[ib], same, folds, distance=distance, subtract_mean=bool(ev.subtract_mean),
            threshold=float(cfg.threshold), fars=fars, return_scores=True,
        )
    except ValueError as err:  # e.g. a list file with one fold or one class
        raise FacematchError(f"cannot score {pairs_file}: {err}") from None
    scores = protocol.cosine_scores(emb[ia], emb[ib])
    protocol_s = time.perf_counter() - t1

    # -- identification ---------------------------------------------------------------------------------
    ident: dict[str, Any] = {}
    labels = np.array([identity_of(p) for p in paths])
    if ev.identification:
        from facematch.eval.identification import identification_report

        try:
            with warnings.catch_warnings():  # sklearn warns that many classes look like regression targets
                warnings.simplefilter("ignore", UserWarning)
                ident = identification_report(emb, labels, seed=int(cfg.seed))
        except ValueError as err:
            ident = {"skipped": str(err)}

    # -- outputs ----------------------------------------------------------------------------------------
    t2 = time.perf_counter()
    figures = make_plots(out_dir, scores, ranked, same, emb, labels, cfg, fars) if ev.plots else {}
    plots_s = time.perf_counter() - t2

    metrics: dict[str, Any] = dict(report)
    metrics.update({k: ident[k] for k in ("rank_1", "rank_5", "knn_accuracy") if k in ident})
    metrics.update({
        "identification": ident,
        "n_images": len(paths),
        "embedding_cache_hit": bool(embed_stats.get("cache_hit")),
        "embedding_cache": {**embed_stats, "key": key if ev.cache else None},
        "model": model.description,
        "arch": spec.name,
        "flip": flip,
        "precision": precision,
        "device": device,
        "runtime": embed_stats.get("runtime"),
        "machine": machine_info(),
        "preprocess": source.key,
        "data": {"root": str(root), "pairs": pairs_file, "format": sniff_format(pairs_file),
                 "n_folds": int(len(np.unique(folds)))},
        "plots": sorted(figures),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "overrides": _overrides(),
        "config": to_container(cfg),
        "timings": {"embed_s": embed_stats.get("seconds"), "protocol_s": protocol_s, "plots_s": plots_s},
    })
    if ev.tensorboard:
        t3 = time.perf_counter()
        write_tensorboard(out_dir / "tensorboard", metrics, scores, same, emb, labels, figures, cfg, source, paths)
        metrics["timings"]["tensorboard_s"] = time.perf_counter() - t3
    metrics["seconds"] = time.perf_counter() - t0
    write_json(out_dir / "metrics.json", metrics)
    print(summary_table(metrics, out_dir), flush=True)
    return metrics


# ---------------------------------------------------------------------------------------------------
# plots, TensorBoard, table


def make_plots(out_dir: Path, scores, ranked, same, emb, labels, cfg: DictConfig, fars) -> dict:
    """``{name: Figure}`` for roc / f1_threshold / score_histogram / tsne, each also written as PNG.

    The ROC is drawn from ``ranked`` (the protocol scores, as AUC and VAL are computed); the F1 curve
    and the histogram from the raw cosine ``scores``, on the scale of the fixed threshold."""
    from facematch.eval import plots

    thr = float(cfg.threshold)
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


def write_tensorboard(log_dir: Path, metrics: dict, scores, same, emb, labels, figures: dict, cfg: DictConfig,
                      source, paths: list[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from facematch.eval.plots import most_frequent_identities

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
        same = np.asarray(same, bool)
        writer.add_histogram("eval/similarity_same", np.asarray(scores)[same], 0)
        writer.add_histogram("eval/similarity_different", np.asarray(scores)[~same], 0)
        writer.add_text("eval/summary", "```\n" + summary_table(metrics, log_dir.parent) + "\n```", 0)
        n_ids = int(cfg.eval.tsne_identities or 0)
        if n_ids > 0 and len(paths):
            keep = np.flatnonzero(np.isin(labels, most_frequent_identities(labels, n_ids)))
            label_img = _thumbnails(source, [paths[i] for i in keep]) if len(keep) <= 2000 else None
            writer.add_embedding(emb[keep], metadata=labels[keep].tolist(), label_img=label_img,
                                 tag="embeddings", global_step=0)
    finally:
        writer.close()


def _thumbnails(source, rels: list[str], size: int = 32):
    """Small crops for the projector's sprite (best effort: None if any crop cannot be read)."""
    import torch
    import torch.nn.functional as F

    try:
        crops = np.stack([source(r) for r in rels])
    except Exception as err:  # thumbnails are decoration
        log.warning("projector thumbnails skipped: %s", err)
        return None
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


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
    emb_s = (m.get("timings") or {}).get("embed_s") or 0.0
    lines += [
        f"  embeddings           {m['n_images']} in {emb_s:.1f} s ({cache})",
        f"  wall time            {m.get('seconds', 0.0):.1f} s",
        f"  output               {out_dir / 'metrics.json'}",
    ]
    return "\n".join(lines)
