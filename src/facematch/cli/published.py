"""The published figures ``facematch-report`` prints beside the rows whose config carries them
(``published.rows`` of ``conf/experiment/scratch_resnet50.yaml``, ``_facenet.yaml``): "ours / published".

Which of ours is which published figure: pair accuracy is the 10-fold protocol's (mean over the folds run);
kNN and Rank-5 are the gallery/probe metrics of :mod:`facematch.eval.identification`; template Rank-1 / 5
are the FaceNet reproduction's nearest-template accuracy (:mod:`facematch.eval.nearest_template`), shown
when a row's table publishes them.
"""

from __future__ import annotations

import numpy as np

from facematch.errors import FacematchError


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"

def published_figures(cfg: dict) -> dict | None:
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


PUBLISHED_COLUMNS = [("pair acc", "accuracy_mean", "pair_accuracy"), ("kNN", "knn_accuracy", "knn_accuracy"),
                     ("Rank-5", "rank_5", "rank_5"), ("final loss", "final_loss", "final_loss")]
TEMPLATE_COLUMNS = [("template acc", "template_rank_1", "template_rank_1"),
                    ("template Rank-5", "template_rank_5", "template_rank_5")]


def template_means(templates: list[dict]) -> dict:
    """Each ``template_rank_*`` averaged over the folds, when every fold has it (no half-made means)."""
    keys = ("template_rank_1", "template_rank_5")
    if not templates or not all(all(k in t for k in keys) for t in templates):
        return {}
    return {k: float(np.mean([t[k] for t in templates])) for k in keys}


def published_markdown(rows: list[dict]) -> str:
    """Rows whose config carries published figures, each figure next to ours ("ours / published"). Ours
    are over the folds the row ran (pair accuracy: the 10-fold protocol's mean over them; kNN and Rank-5:
    among each fold's own people)."""
    sources = sorted({r["published"]["source"] for r in rows})
    columns = PUBLISHED_COLUMNS + [c for c in TEMPLATE_COLUMNS if any(c[2] in r["published"] for r in rows)]
    head = ["exp", "arch", "margin", "folds"] + [f"{name} (ours / published)" for name, _, _ in columns]
    lines = [f"Next to the published figures ({'; '.join(sources)}):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(key: str, x) -> str:
        if x is None:
            return "—"
        return f"{x:.4f}" if key == "final_loss" else fmt_pct(x)

    for r in sorted(rows, key=lambda r: (r["exp"], str(r["margin"]))):
        pub = r["published"]
        cells = [r["exp"], r["arch"], r["margin"], str(r.get("n_folds", "—"))]
        cells += [f"{fmt(ours, r.get(ours))} / {fmt(ours, pub.get(theirs))}" for _, ours, theirs in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
