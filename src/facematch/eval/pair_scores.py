"""``pair_scores.tsv``: every pair of a facematch-eval run, as the protocol scored and decided it."""

from __future__ import annotations

from pathlib import Path

from facematch.eval.verification import Verification


def write_pair_scores(path: Path, pairs, res: Verification) -> None:
    """One line per pair, in the pairs file's order: both paths, label, fold, raw cosine, protocol score and
    the protocol's decision (1: same; the score against its fold's threshold)."""
    from facematch.utils.io import atomic_write_text

    lines = ["a\tb\tsame\tfold\tcosine\tprotocol_score\tdecision"]
    lines += [f"{p.a}\t{p.b}\t{int(s)}\t{int(f)}\t{c:.9g}\t{r:.9g}\t{int(d)}"
              for p, s, f, c, r, d in zip(pairs, res.same, res.folds, res.cosine, res.ranked, res.decisions())]
    atomic_write_text(path, "\n".join(lines) + "\n")
