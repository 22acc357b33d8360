"""``facematch-eval`` (and ``python -m facematch.eval.job``): a composed ``eval`` config -> the one evaluation
job -> outputs in the run dir. The entry point (:func:`main`, Hydra's :func:`hydra_main`) and the job's
orchestration (:func:`evaluate`); its parts live in modules named for them.

    facematch-eval arch=mobilefacenet arch.weights=W data=lfw_aligned112 data.root=D/lfw-aligned-112 \
        data.pairs=D/lfw/pairs.txt hydra.run.dir=OUT
    facematch-eval ckpt_path=outputs/runs/train/.../checkpoints/last.ckpt data=lfw_photos

Model (``ckpt_path``, ``onnx_path`` or ``arch``), pairs (``data.pairs``: LFW ``pairs.txt`` or a ``pathA pathB label``
list), crops and engine (:mod:`facematch.eval.inputs`) and ``protocol`` go to the scoring,
:func:`facematch.eval.verification.verify`; then identification (Rank-1/5, kNN), the figures and TensorBoard
(:mod:`facematch.eval.figures`), ``metrics.json`` and the table on stdout (:mod:`facematch.eval.metrics_file`)
and ``pair_scores.tsv`` (:mod:`facematch.eval.pair_scores`). See ``conf/eval.yaml`` for every option.

Sharded over several processes (the images split across them, the metrics those of one process; rank 0
writes the outputs; give every rank the same ``hydra.run.dir``)::

    torchrun --nproc-per-node=2 -m facematch.eval.job arch=mobilefacenet arch.weights=W data=lfw_aligned112 \
        data.root=D/lfw-aligned-112 data.pairs=D/lfw/pairs.txt hydra.run.dir=OUT
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from facematch.config import check_config, config_dir, instantiate_node, write_json
from facematch.data.pair_files import identity_of, read_pairs
from facematch.errors import FacematchError, run_or_exit
from facematch.eval.figures import make_plots, write_tensorboard
from facematch.eval.inputs import engine_settings, eval_source
from facematch.eval.metrics_file import job_metrics, summary_table
from facematch.eval.pair_scores import write_pair_scores
from facematch.eval import cross_jobs
from facematch.eval.sharding import is_rank_zero, process_group_from_env
from facematch.eval.template_pool import template_figures
from facematch.eval.verification import Protocol, verify
from facematch.models.loading import load_model
from facematch.utils.allocator import tune as tune_allocator
from facematch.utils.renamed import check_overrides

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _output_dir(cfg: DictConfig) -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:
        return Path(cfg.paths.output_dir)


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
    emb, paths = res.emb, res.paths

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
    metrics = job_metrics(cfg, res, ident, model, protocol, source, pairs_file, figures, plots_s) | cross
    if cfg.eval.tensorboard:
        t3 = time.perf_counter()
        write_tensorboard(out_dir / "tensorboard", metrics, res, emb, labels, figures, cfg, source, paths)
        metrics["timings"]["tensorboard_s"] = time.perf_counter() - t3
    write_pair_scores(out_dir / "pair_scores.tsv", pairs, res)
    if cfg.eval.quality.enabled:  # issue 33: quality scores, error-versus-discard curves (facematch.quality)
        from facematch.quality.job import quality_report
        metrics["quality"] = quality_report(cfg.eval.quality, model, source, pairs, pairs_file, out_dir,
                                            plots=bool(cfg.eval.plots))
    metrics["seconds"] = time.perf_counter() - t0
    write_json(out_dir / "metrics.json", metrics)
    print(summary_table(metrics, out_dir), flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> float | None:
    return run_or_exit(evaluate, cfg).get("accuracy_mean")


def main() -> None:
    """``facematch-eval``: a renamed key or option on the command line is one line naming the new one."""
    tune_allocator()
    run_or_exit(check_overrides, sys.argv[1:])
    hydra_main()


if __name__ == "__main__":  # guarded: spawned DataLoader workers re-import the main module
    main()
