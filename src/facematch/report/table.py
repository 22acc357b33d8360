"""The Markdown tables of ``facematch-report``: one row per configuration, and the published figures next
to ours. Rows are :meth:`facematch.report.rows.Row.as_dict` dicts (what ``--json`` writes and results files hold)."""

from __future__ import annotations

from facematch.report.published import ours_beside

COLUMNS = ["exp", "data", "arch", "pretrained on", "loss", "margin", "optimizer", "scheduler", "10-fold acc ± std",
           "VAL@FAR=1e-3", "F1@0.6", "acc@0.6", "undegraded acc", "Rank-5 / kNN", "final loss", "wall time",
           "model kept", "CPU"]
# Shown where some row has them (rows written by older reports do not): the training batches' layout, the
# pooled pair AUC, the training images drawn per job, and a one-job row's validation AUC per epoch.
OPTIONAL_COLUMNS = ["batches", "AUC", "images seen", "val AUC per epoch"]

PUBLISHED_HEAD = ["exp", "arch", "margin", "folds", "published arch"]


def published_head(rows: list[dict]) -> list[str]:
    """:data:`PUBLISHED_HEAD`, then one column per published figure some row carries (the document's label,
    and the facematch metric set beside it: facematch.report.published)."""
    ids = []
    for r in _sorted(rows):
        for fid, fig in ((r.get("published") or {}).get("figures") or {}).items():
            name = _published_column(fid, fig)
            if name not in ids:
                ids.append(name)
    return PUBLISHED_HEAD + ids


def _published_column(fid: str, fig: dict) -> str:
    return f"{fid} ~ {fig.get('facematch') or 'none'} (ours / published)"


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def _identification(r: dict) -> str:
    """Rank-5 / kNN: per-fold rows measure among each fold's own people (mean over folds), an evaluation
    among all the people of its pairs file, a harder gallery, marked "(all)"."""
    if r.get("rank_5") is None:
        return "—"
    return f"{fmt_pct(r['rank_5'])} / {fmt_pct(r.get('knn_accuracy'))}" + ("" if "kept" in r else " (all)")


def _undegraded(r: dict) -> str:
    if r.get("undegraded_accuracy_mean") is not None:
        return f"{fmt_pct(r['undegraded_accuracy_mean'])} ± {fmt_pct(r['undegraded_accuracy_std'])}"
    return "—"


def _cpu(r: dict) -> str:
    """The CPU a row ran on, from the machine block its runs recorded, and whether it computes bf16 natively."""
    cpu = (r.get("machine") or {}).get("cpu") or {}
    if not cpu.get("model"):
        return "—"
    return cpu["model"] + (", native bf16" if cpu.get("native_bf16") else ", no native bf16")


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["exp"], str(r["margin"])))


def head(rows: list[dict]) -> list[str]:
    """:data:`COLUMNS`, and each optional column some row has a value for."""
    body = cells(rows)
    return COLUMNS + [c for c in OPTIONAL_COLUMNS if any(r[c] != "—" for r in body)]


def cells(rows: list[dict]) -> list[dict[str, str]]:
    """Each row as ``{column: cell text}`` over :data:`COLUMNS` and :data:`OPTIONAL_COLUMNS`."""
    out = []
    for r in _sorted(rows):
        acc = f"{fmt_pct(r.get('accuracy_mean'))} ± {fmt_pct(r.get('accuracy_std'))}"
        if r.get("n_folds") not in (None, 10):
            acc += f" ({r['n_folds']} folds)"
        values = [r["exp"], r["data"], r["arch"], r["pretrained on"], r["loss"], r["margin"], r["optimizer"],
                  r["scheduler"], acc,
                  fmt_pct(r.get("val_at_far_1e-3")) + (" (raw cos)" if r.get("val_scores") == "raw cosine" else ""),
                  fmt_pct(r.get("f1_at_threshold")), fmt_pct(r.get("accuracy_at_threshold")), _undegraded(r),
                  _identification(r), f"{r['final_loss']:.4f}" if r.get("final_loss") is not None else "—",
                  fmt_time(r.get("seconds")), r.get("kept", "—"), _cpu(r)]
        values += [r.get("batches", "—"), f"{r['auc']:.4f}" if r.get("auc") is not None else "—",
                   f"{r['images_seen']:,}" if r.get("images_seen") is not None else "—",
                   r.get("val_auc_per_epoch", "—")]
        out.append(dict(zip(COLUMNS + OPTIONAL_COLUMNS, (str(v) for v in values))))
    return out


def published_cells(rows: list[dict]) -> list[dict[str, str]]:
    """Rows whose config names a published table, each published figure next to ours ("ours / published";
    "none" where nothing of ours is the same quantity, "—" where this row did not compute it). Ours are over
    the folds the row ran; the published arch is named so that a different backbone is not read as like for
    like."""
    out = []
    published = [r for r in rows if r.get("published") is not None]
    head = published_head(published)
    for r in _sorted(published):
        pub = r["published"]
        cells = dict.fromkeys(head, "—")
        cells.update({"exp": r["exp"], "arch": r["arch"], "margin": str(r["margin"]),
                      "folds": str(r.get("n_folds", "—")), "published arch": pub.get("arch", "—")})
        for fid, fig in (pub.get("figures") or {}).items():
            ours = r.get(fig["facematch"]) if fig.get("facematch") else None
            cells[_published_column(fid, fig)] = ours_beside(fig, ours)
        out.append(cells)
    return out


def grid(head: list[str], body: list[dict[str, str]]) -> str:
    """A plain Markdown table of ``body``'s cells under ``head``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in body]
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The report's table; below it, where some rows carry published figures, the side-by-side table."""
    text = grid(head(rows), cells(rows))
    published = [r for r in rows if r.get("published") is not None]
    if published:
        sources = sorted({r["published"]["source"] for r in published})
        text += (f"\n\nNext to the published figures ({'; '.join(sources)}):\n\n"
                 + grid(published_head(published), published_cells(published)))
    return text
