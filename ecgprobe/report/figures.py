"""Deterministic figure rendering: a drawing function in, PNG bytes out.

Figures are made on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot
state, so rendering is safe in any process and never opens a window), with one fixed style and
no metadata in the PNG, so the same results always give byte-identical images (a report
re-rendered from ``results.json`` is identical to the first one).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from ecgprobe.report.blocks import Figure

__all__ = ["PALETTE", "STYLE", "categorical_colors", "new_axes", "plot_figure", "render_png"]

#: Colours of the encoders of a comparison or study, in order (colour-blind-safe, Okabe-Ito).
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def categorical_colors(n: int) -> list[Any]:
    """``n`` distinct colours for categories (labels): tab10, or tab20 beyond ten."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


#: The report's matplotlib style (fixed, so figures do not depend on the user's matplotlibrc).
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "image.cmap": "viridis",
    "path.simplify": True,
    "svg.hashsalt": "ecgprobe",
}


def new_axes(figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    """A fresh Axes on a bare Figure (for plotting functions called without ``ax=``)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).subplots()


def render_png(
    draw: Callable[[Any], object],
    *,
    size: tuple[float, float] = (7.0, 3.6),
    dpi: int = 110,
) -> bytes:
    """Run ``draw(figure)`` on a new figure and return it as PNG bytes.

    Args:
        draw: fills the :class:`matplotlib.figure.Figure` it is given (add axes, plot).
        size: width and height in inches.
        dpi: resolution (110 keeps a page-wide figure sharp on screen and in print).

    Returns:
        The PNG file's bytes, identical for identical input (no timestamps or version metadata).

    Example:
        >>> png = render_png(lambda fig: fig.subplots().plot([0, 1], [0, 1]))
        >>> png[:4] == b"\\x89PNG"
        True
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with mpl.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def plot_figure(
    plot: Callable[..., object],
    data: Any,
    *,
    size: tuple[float, float],
    caption: str,
    alt: str,
    width: float = 1.0,
    **options: Any,
) -> Figure:
    """A report figure of one pure plotting function on one Axes: ``plot(data, ax=ax, **options)``.

    Args:
        plot: a function of :mod:`ecgprobe.report.plots` (takes the data and ``ax=``).
        data: what it draws (a result, or results by subject).
        size: width and height in inches.
        caption: shown under the figure.
        alt: the figure's alternative text.
        width: share of the text width it takes (0-1].
        **options: further keyword arguments of ``plot``.

    Returns:
        The :class:`~ecgprobe.report.blocks.Figure` block.

    Example:
        >>> from ecgprobe.report import plots
        >>> fig = plot_figure(plots.plot_scarcity, res, size=(6.5, 3.8), caption="c", alt="a")  # doctest: +SKIP
    """
    png = render_png(lambda fig: plot(data, ax=fig.subplots(), **options), size=size)
    return Figure(png, caption=caption, alt=alt, width=width)
