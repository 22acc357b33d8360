"""Why the seed-2 CPU row's closed-set template accuracy is low and its fold-0 one high (issue 31, item 8):
one trained checkpoint, every figure recomputed by brute force, with and without the original's leak.

Embeds, with the checkpoint in eval mode (fp32, no flip unless said), the closed-set split's training and
validation images (the 150 people) and fold 0's people's images, then computes ``Code/eval_model.py``'s
accuracy written out by loops (the mean of 5 scaled outputs per person, ``argmin`` of Euclidean distances):

- ``closed set``: templates from training images, probes from validation images, as
  ``callbacks.template_accuracy`` draws them (its own figure beside, to show they agree); then the same
  people with the leak (templates and probes drawn from all their images, as the original's LFW test);
- ``fold 0``: the pool of ``templates=folder`` (all images of fold 0's people with 3+, no flip) and of
  ``templates=pairs`` (their images in pairs.txt, flip concat: what results/seed2_facenet_cpu.json reports),
  each with the leak (as reported) and without it (each probe's own template drawn from its other images).

    python scripts/template_leak.py outputs/runs/train/<time>/checkpoints/epoch_000.ckpt \\
        experiment=seed2_facenet_cpu margin=0.7 --out results/seed2_template_leak.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from facematch.errors import cli_errors
from facematch.utils.io import atomic_write_text


def eval_model_py(emb, labels, picks, probes, own_picks=None) -> float:
    """``testValues`` by loops: template = mean of the picked outputs; a probe's class = ``argmin`` of the
    Euclidean distances. ``own_picks[i]``, when given, replaces probe i's own class's template images."""
    classes = np.unique(labels)
    templates = np.stack([emb[row].mean(0) for row in picks])
    hits = 0
    for i, p in enumerate(probes):
        c = int(np.searchsorted(classes, labels[p]))
        t = templates
        if own_picks is not None:
            t = templates.copy()
            t[c] = emb[own_picks[i]].mean(0)
        hits += int(np.argmin(np.sqrt(((emb[p] - t) ** 2).sum(1))) == c)
    return hits / len(probes)


def leak_free_picks(labels, probes, per_class: int, seed: int) -> list[np.ndarray]:
    """For each probe, ``per_class`` images of its class other than itself, drawn with replacement."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(labels))
    return [rng.choice(idx[(labels == labels[p]) & (idx != p)], per_class) for p in probes]


def row(name: str, emb, labels, picks, probes, leak: bool, own_picks=None, **extra) -> dict:
    """One figure: its set, its size, whether probes can be in their own template (``leak``: the probes are
    drawn from the images the templates are drawn from) and how often they are, the accuracy and chance."""
    classes = np.unique(labels)
    in_own = [p in picks[np.searchsorted(classes, labels[p])] for p in probes] if own_picks is None else [False]
    return {"set": name, "people": int(classes.size), "images": int(len(labels)), "probes": int(len(probes)),
            "leak": leak,
            "probes_in_own_template": float(np.mean(in_own)),
            "template_rank_1": eval_model_py(emb, labels, picks, probes, own_picks), "chance": 1 / classes.size,
            **extra}


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="the training run's overrides (experiment=... margin=...)")
    return run(ap.parse_intermixed_args(argv))


def run(args) -> int:
    from hydra import compose, initialize_config_dir

    from facematch.config import config_dir, instantiate_node
    from facematch.data.identities import IdentityIndex
    from facematch.data.pair_files import fold_identities, identity_of, read_pairs
    from facematch.eval.inputs import eval_source
    from facematch.eval.nearest_template import draw_probes, draw_templates, template_accuracy
    from facematch.eval.template_pool import folder_pool
    from facematch.eval.verification import embedder_for
    from facematch.models.loading import load_checkpoint_model

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(args.overrides))
    model = load_checkpoint_model(args.ckpt)
    net = model.module.eval()
    dm = instantiate_node(cfg.data, _partial_=True, _convert_="all")(spec=model.spec)
    dm.setup("fit")
    cb = cfg.callbacks.template_accuracy
    per_class, seed, n_probes = int(cb.per_class), int(cb.seed), int(cb.n_probes)
    tf = dm._transform(False)

    @torch.no_grad()
    def embed(rels):  # eval mode, fp32, one view; scaled as the FaceNet head outputs them
        out = np.concatenate([net(torch.stack([tf(dm.source(r)) for r in rels[i:i + 64]])).numpy()
                              for i in range(0, len(rels), 64)])
        return 10 * out / np.linalg.norm(out, axis=1, keepdims=True)

    rows = []
    (pool, pool_labels), (val, val_labels) = dm.template_sets()
    pool_labels, val_labels = np.asarray(pool_labels), np.asarray(val_labels)
    emb = embed(pool + val)
    labels = np.concatenate([pool_labels, val_labels])
    _, picks = draw_templates(pool_labels, per_class, seed)
    probes = draw_probes(val_labels, n_probes, seed + 1) + len(pool)
    logged = template_accuracy(emb[:len(pool)], pool_labels, emb[probes], labels[probes], per_class, seed)
    rows.append(row("closed set: training-image templates, validation probes (val/template_rank_1)", emb, labels,
                    picks, probes, False, callback_figure=logged["template_rank_1"]))
    _, all_picks = draw_templates(labels, per_class, seed)
    all_probes = draw_probes(labels, n_probes, seed + 1)
    rows.append(row("closed set, the same people with the leak (templates and probes from all their images)",
                    emb, labels, all_picks, all_probes, True))

    pairs = read_pairs(str(cfg.data.pairs), n_folds=10)
    people = fold_identities(pairs, 0)
    folder = folder_pool(IdentityIndex.from_folder(cfg.data.root), 3, people)
    in_pairs = sorted({r for p in pairs for r in (p.a, p.b) if identity_of(r) in people})
    source = eval_source(cfg, model.spec.template)
    engine = {"precision": "fp32", "runtime": "eager", "cache": False, "progress": False, "device": "cpu"}
    for name, rels, flip in (("fold 0, templates=folder: all images of its people with 3+, no flip", folder, "none"),
                             ("fold 0, templates=pairs: their images in pairs.txt, flip concat", in_pairs, "concat")):
        e, paths = embedder_for(model, source, flip, engine).embed(rels)
        y = np.array([identity_of(p) for p in paths])
        names, counts = np.unique(y, return_counts=True)
        keep = np.isin(y, names[counts >= 3])
        e = e[keep] / np.linalg.norm(e[keep], axis=1, keepdims=True) * 10
        y = y[keep]
        _, pk = draw_templates(y, per_class, seed)
        pr = draw_probes(y, 2000, seed + 1)
        rows.append(row(name, e, y, pk, pr, True))
        rows.append(row(name + ", without the leak", e, y, pk, pr, False, leak_free_picks(y, pr, per_class, seed + 2)))

    trained = Path(args.ckpt).resolve().parents[1] / ".hydra" / "overrides.yaml"  # the run that wrote it
    trained_by = "facematch-train " + " ".join(yaml.safe_load(trained.read_text())) if trained.is_file() else None
    from facematch.report.provenance import stamp

    command = "python scripts/template_leak.py " + " ".join(sys.argv[1:])
    out = {"kind": "template-leak", "command": command, "provenance": stamp(command), "checkpoint": str(args.ckpt), "checkpoint_epoch": model.description.get("epoch"),
           "checkpoint_step": model.description.get("global_step"),
           "trained_by": trained_by,
           "overrides": list(args.overrides), "rows": rows}
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(f"{r['template_rank_1']:7.2%}  (chance {r['chance']:.2%}, probe in own template "
              f"{r['probes_in_own_template']:.1%})  {r['set']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
