"""Per-fold evaluation of a model trained with ``data.test_fold=k`` (the protocol that holds up).

Job k of a per-fold multirun trained on people outside LFW View 2 fold k. It embeds every image of
``pairs.txt`` with its trained model and runs the standard 10-fold protocol on them, but keeps only
fold k's result: the threshold (and the mean feature) come from the other nine folds, the accuracy
from fold k, whose people the model never saw. ``facematch-report`` combines the ten jobs: mean ± std
of the ten fold accuracies, and the fixed-threshold / VAL@FAR figures on the pooled fold-k scores,
each pair scored by a model that never trained on its people.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from facematch.data.protocols import pair_arrays, read_pairs
from facematch.eval.embed import Embedder, check_flip
from facematch.models.net import BackboneHead
from facematch.eval.protocol import cosine_scores, verification_report


def _combine_views(views: torch.Tensor, flip: str) -> torch.Tensor:
    """(N, 2, D) embeddings of the plain and mirrored crop -> (N, D') as the eval flip test does."""
    if flip == "concat":
        return views.flatten(1)
    if flip == "sum":
        return views.sum(1)
    return views[:, 0]


@torch.no_grad()
def embed_for_eval(model, datamodule, rels: list[str], flip: str, batch_size: int = 256, device: str = "auto",
                   precision: str = "auto") -> np.ndarray:
    """Embeddings (backbone -> trained head, before its L2 normalisation: see ``EmbeddingHead.project``) of
    ``rels`` with the flip test. With cached backbone features
    (frozen fast path, plain + mirror views) only the head runs; otherwise the images go through the
    evaluation embedder."""
    check_flip(flip)
    model.eval()
    store = datamodule.feature_store
    if store is not None and (store.views == 2 or flip == "none"):
        feats = store.stack(rels).float()  # (N, V, D)
        out = torch.cat([model.head.project(feats[i: i + batch_size].flatten(0, 1)).view(-1, feats.shape[1], model.head.dim)
                         for i in range(0, len(rels), batch_size)])
        return _combine_views(out, flip).numpy()
    embedder = Embedder(BackboneHead(model.backbone, model.head), model.backbone.spec, datamodule.source,
                        flip=flip, batch_size=batch_size, device=device, precision=precision)
    emb, _ = embedder.embed(rels)
    return emb


def fold_metrics(model, datamodule, pairs_file: str, fold: int, *, flip: str = "concat",
                 subtract_mean: bool = True, distance: str = "cosine", threshold: float = 0.6, device: str = "auto",
                 precision: str = "auto") -> dict:
    """Fold ``fold``'s accuracy under the 10-fold protocol, its raw-cosine and protocol scores, and the full report."""
    t0 = time.perf_counter()
    pairs = read_pairs(pairs_file)
    rels = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    ia, ib, same, folds = pair_arrays(pairs, rels)
    emb = embed_for_eval(model, datamodule, rels, flip, device=device, precision=precision)
    a, b = emb[ia], emb[ib]
    report, ranked = verification_report(a, b, same, folds, distance=distance, subtract_mean=subtract_mean,
                                         threshold=threshold, return_scores=True)
    k = folds == fold
    return {
        "fold": int(fold),
        "fold_accuracy": report["fold_accuracies"][sorted(set(folds.tolist())).index(fold)],
        "fold_scores": cosine_scores(a[k], b[k]).tolist(),  # raw cosine: for the fixed 0.6 threshold
        "fold_protocol_scores": ranked[k].tolist(),  # as the protocol scored fold k: for VAL@FAR
        "fold_same": same[k].astype(int).tolist(),
        "flip": flip, "subtract_mean": subtract_mean, "distance": distance, "threshold": threshold,
        "all_folds_report": report,  # other folds' numbers are on trained-on people: reference only
        "eval_seconds": time.perf_counter() - t0,
    }
