"""The error-versus-discard plots ``facematch-eval eval.quality.enabled=true`` writes: one per FMR."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facematch.utils.figures import new_figure, save_figure

LABELS = {"learned": "learned (CR head)", "norm": "feature norm", "resolution": "true resolution (oracle)",
          "random": "random"}
STYLES = {"learned": "-", "norm": "--", "resolution": ":", "random": "-."}


def discard_plot(result: dict, fmr: float, path: str | Path, f_max: float = 0.5):
    """FNMR at FMR ``fmr`` (threshold fixed on the full set) against the fraction discarded, per score."""
    fig, ax = new_figure()
    x = np.asarray(result["fractions"])
    keep = x <= f_max + 1e-12
    for name, label in LABELS.items():
        curve = np.asarray(result["curves"][f"{name}@{fmr:g}"])
        ax.plot(x[keep], curve[keep], STYLES[name], label=label)
    ax.axvline(result["settings"]["f_max"], color="grey", lw=0.6)
    ax.set_xlabel("fraction of lowest-quality comparisons discarded")
    ax.set_ylabel(f"FNMR at FMR {fmr:g}")
    ax.set_title(f"Error versus discard, mixed-quality LFW pairs (FMR {fmr:g})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
