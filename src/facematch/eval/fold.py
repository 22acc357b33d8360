"""Per-fold scoring after training with ``data.test_fold=k``: the model, on fold k, through the one job.

Job k of a per-fold multirun trained on people outside LFW View 2 fold k. Every image of ``pairs.txt`` is
embedded with its trained model, from the crops ``facematch-eval`` scores for the same data config
(:func:`facematch.eval.inputs.eval_source`), and the 10-fold protocol runs on them; only fold k's result is
kept: its threshold and mean feature come from the other nine folds, its accuracy from fold k, whose people
the model never saw. ``facematch-report`` combines the ten jobs.

With ``data.degrade``, fold k is also scored on the original (undegraded) crops: how much of the
full-resolution accuracy a model adapted to degraded photos keeps (``undegraded`` in the result).

Identification (Rank-1, Rank-5, kNN: :mod:`facematch.eval.identification`) is measured on the images of
fold k's people only (a gallery/probe split of them), whom the model never saw; so is the FaceNet
reproduction's nearest-template accuracy (under ``identification.template``): among their images in the
pairs file (``templates=pairs``) or all of their images under ``data.root`` (``templates=folder``, the
second original's LFW test; :mod:`facematch.eval.template_pool`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from omegaconf import DictConfig

import numpy as np

from facematch.data.pair_files import fold_identities, identity_of, read_pairs
from facematch.data.source import FaceSource
from facematch.eval.cross_jobs import fold_cross
from facematch.eval.identification import identification_report
from facematch.eval.inputs import engine_settings, eval_source
from facematch.eval.template_pool import template_figures
from facematch.eval.verification import Protocol, verify
from facematch.models.loading import EvalModel
from facematch.models.net import BackboneHead


@dataclass
class FoldEmbeddings:
    """The embeddings of the images of fold k's people (whom the model never saw), their identities, their
    paths under ``source`` and the source that reads their crops: what TensorBoard's projector shows."""

    emb: np.ndarray
    labels: np.ndarray
    paths: list[str]
    source: FaceSource


def score_fold(backbone, head, cfg: DictConfig, protocol: Protocol) -> tuple[dict, FoldEmbeddings]:
    """Fold ``cfg.data.test_fold``'s result for a trained backbone + head, and the full report; with the
    embeddings of the fold's people."""
    t0 = time.perf_counter()
    fold = int(cfg.data.test_fold)
    model = EvalModel(BackboneHead(backbone, head), backbone.spec, "", {"kind": "training run"})
    pairs = read_pairs(str(cfg.data.pairs), n_folds=int(protocol.n_folds))
    source = eval_source(cfg, backbone.spec.template)
    engine = engine_settings(cfg, progress=False)
    res = verify(model, pairs, source, protocol, engine, what=str(cfg.data.pairs))
    people = fold_identities(pairs, fold)
    keep = [i for i, p in enumerate(res.paths) if identity_of(p) in people]
    embedded = FoldEmbeddings(res.emb[keep], np.array([identity_of(res.paths[i]) for i in keep]),
                              [res.paths[i] for i in keep], source)
    identification = _fold_identification(embedded, int(cfg.seed))
    identification["template"] = template_figures(cfg, model, source, engine, res.emb, res.paths, protocol.flip,
                                                  people=people)
    out = {
        **res.fold(fold),
        "identification": identification,
        "protocol": protocol.as_dict(),
        "embedding_cache_key": res.embed_stats.get("cache_key"),
        "precision": res.ran["precision"],  # as the scores were computed (the embedder's resolved engine)
        "all_folds_report": res.report,  # other folds' numbers are on trained-on people: reference only
    }
    if getattr(source, "degrade", None) is not None:
        clean = verify(model, pairs, eval_source(cfg, backbone.spec.template, degraded=False), protocol,
                       engine, what=str(cfg.data.pairs))
        out["undegraded"] = clean.fold(fold)
        out.update(fold_cross(cfg, pairs, res, clean, lambda t: eval_source(cfg, t, degraded=False), protocol,
                              engine, fold))  # one side degraded: facematch.eval.cross_jobs
    out["eval_seconds"] = time.perf_counter() - t0
    return out, embedded


def _fold_identification(fold: FoldEmbeddings, seed: int) -> dict:
    """Rank-1 / Rank-5 / kNN among the images of the fold's people (those with 2+ images take part)."""
    try:
        return identification_report(fold.emb, fold.labels, seed=seed)
    except ValueError as err:  # no person of the fold has two images in the pairs file
        return {"skipped": str(err)}
