"""The two steps every PNG figure of facematch shares (evaluation plots, error-versus-discard curves): a
headless matplotlib figure (no pyplot, so no global state and no GUI backend) and its atomic write."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from facematch.utils.io import atomic_write


def blank_figure(size=(6.0, 4.5)) -> Figure:
    """A figure on its own Agg canvas, without axes (the caller lays them out)."""
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(size=(6.0, 4.5)) -> tuple[Figure, object]:
    """A figure with one set of axes."""
    fig = blank_figure(size)
    return fig, fig.add_subplot(1, 1, 1)


def save_figure(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Write ``fig`` as PNG to ``path`` atomically (None: keep it in memory only); returns ``fig``."""
    if path is not None:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    return fig
