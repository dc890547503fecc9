"""Figures of the synthetic experiments, each drawn from a result table alone.

Every function takes the tidy table an experiment wrote (see
``lowrank_theory.simulations.experiments``) and returns a matplotlib Figure; none reruns a
simulation. Each is true to its table's grid (:mod:`lowrank_theory.figures.facets`): a swept
field the figure does not draw itself becomes a facet, so no curve pools two configs. Bands are
95% t-intervals of the mean over seeds by default, or min-max (``band=``,
:mod:`lowrank_theory.figures.bands`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lowrank_theory.figures.bands import DEFAULT_BAND, band_caption, band_stats, check_band
from lowrank_theory.figures.facets import config_label, faceted, tag
from lowrank_theory.figures.style import (
    OKABE_ITO,
    REFERENCE_COLOR,
    SEQUENTIAL_CMAP,
    canvas,
    house_style,
    method_style,
)
from lowrank_theory.simulations.configs import RECOVERED

__all__ = [
    "LOG_FLOOR",
    "LANDSCAPE_FLOOR",
    "wrap",
    "draw_band",
    "star_layout",
    "kt_equals_d_steps",
    "plot_phase",
    "plot_rate",
    "plot_landscape",
]

#: Values below this are drawn at this value on log axes (an exact zero has no logarithm).
LOG_FLOOR = 1e-12
#: The landscape's objectives reach double-precision zero (~1e-24 for O(100) losses), so its
#: histograms need a lower floor.
LANDSCAPE_FLOOR = 1e-30
#: The parameters of the vary set, in the order of its rows of panels.


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the {what} table lacks columns {missing}; was it written by the "
                         f"{what} experiment?")
    if table.empty:
        raise ValueError(f"the {what} table has no rows")


def wrap(text: str, width: float, fontsize: float = 10.0, indent: str = "") -> str:
    """``text`` broken into lines that fit ``width`` inches at ``fontsize`` points.

    Each line of ``text`` is wrapped on its own, at about 0.6 em per character (DejaVu Sans,
    the house font, averages 0.55), so titles never run past the figure's edge; continuation
    lines start with ``indent``.

    Examples
    --------
    >>> print(wrap("one two three four five six", width=1.0))
    one two
    three four
    five six
    """
    chars = max(12, int(width * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, subsequent_indent=indent) or line
                     for line in text.split("\n"))


def _seeds(rows: pd.DataFrame) -> int:
    return int(rows["seed"].nunique()) if "seed" in rows.columns else 1


def _curve_label(name: str, rows: pd.DataFrame) -> str:
    """``"SR (3 seeds)"``: a curve's legend entry (the title names the statistic)."""
    n = _seeds(rows)
    return f"{name} ({n} seed{'s' if n != 1 else ''})"


#: Most points a curve is drawn with: a 10,000-step fine-tuning curve is drawn at this many
#: iterations (evenly spaced, the last included), which the eye cannot tell from all of them.
MAX_POINTS = 500


def draw_band(ax, rows: pd.DataFrame, x: str, y: str, label: str, style: Mapping[str, str],
              band: str = DEFAULT_BAND, *, log: bool = True, markers: bool = False,
              floor: float = LOG_FLOOR, alpha: float = 0.2) -> pd.DataFrame:
    """Draw the mean over seeds of ``y`` against ``x`` and its band; return the statistics.

    ``log``: the axis is logarithmic (:func:`~lowrank_theory.figures.bands.band_stats`);
    values below ``floor`` are drawn at it. No band is drawn where there is one seed. Both
    artists are tagged with the configs of ``rows`` (:func:`~lowrank_theory.figures.facets.tag`);
    curves longer than :data:`MAX_POINTS` are drawn at that many of their points.
    """
    stats = band_stats(rows, x, y, band, log=log, floor=floor)
    if len(stats) > MAX_POINTS:
        stats = stats.iloc[np.unique(np.linspace(0, len(stats) - 1, MAX_POINTS).round().astype(int))]
    (line,) = ax.plot(stats.index, np.maximum(stats["mean"], floor), color=style["color"],
                      linestyle=style["linestyle"], marker=style["marker"] if markers else None,
                      markersize=4, label=label)
    tag(line, rows, x)
    if (stats["count"] > 1).any():
        tag(ax.fill_between(stats.index, np.maximum(stats["low"], floor),
                            np.maximum(stats["high"], floor), color=style["color"],
                            alpha=alpha, linewidth=0), rows, x)
    return stats


def _legend(fig, axes) -> None:
    """One legend under the figure, with every entry drawn in any panel."""
    entries = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                   ncols=min(len(entries), 4))


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def star_layout(table: pd.DataFrame, params: Sequence[str], defaults: Mapping[str, Any]
                ) -> tuple[dict[str, tuple], dict[str, Any], list[str], bool]:
    """How a table's points lie in ``params``: values, centre, varying params, and star or not.

    The centre takes each parameter's default where the table has it, else its smallest value.
    The points form a *star* when each differs from the centre in at most one parameter (the
    paper's vary set changes one parameter at a time); then a row of panels per varying
    parameter shows every point. Otherwise (a Cartesian grid over several parameters) the
    figures draw the first varying parameter in panels and facet the others.

    Returns
    -------
    values : dict
        The sorted values of each parameter.
    centre : dict
    varying : list of str
        The parameters with several values.
    star : bool

    Examples
    --------
    >>> grid = pd.DataFrame({"T": [2, 3, 2, 3], "k": [1, 1, 2, 2]})
    >>> star_layout(grid, ("T", "k"), {"T": 3, "k": 1})[2:]
    (['T', 'k'], False)
    >>> star_layout(grid.iloc[:3].iloc[[1, 0]], ("T", "k"), {"T": 3, "k": 1})[1:]
    ({'T': 3, 'k': 1}, ['T'], True)
    """
    values = {p: tuple(sorted(table[p].unique().tolist())) for p in params}
    centre = {p: defaults[p] if defaults.get(p) in values[p] else values[p][0] for p in params}
    varying = [p for p in params if len(values[p]) > 1]
    points = table[varying].drop_duplicates()
    off = sum((points[p] != centre[p]).astype(int) for p in varying) if varying else 0
    return values, centre, varying, bool(np.all(np.asarray(off) <= 1))


def kt_equals_d_steps(Ts: np.ndarray, ratios: np.ndarray) -> tuple[list[float], list[float]]:
    """The boundary ``kT = d`` on the phase grid, as a staircase in cell coordinates.

    In row ``i`` (rank ratio ``k/d = ratios[i]``) the cells with ``kT <= d``, i.e.
    ``T <= d/k``, lie left of the boundary; it runs along the right edge of the last such
    column of the (sorted) ``Ts`` (``-0.5`` when there is none). Returns the vertices
    ``(xs, ys)`` of a vertical segment per row joined by horizontal steps.

    Examples
    --------
    >>> kt_equals_d_steps(np.array([1, 2, 3, 4]), np.array([0.25, 0.5]))
    ([3.5, 3.5, 1.5, 1.5], [-0.5, 0.5, 0.5, 1.5])
    """
    Ts = np.asarray(Ts, dtype=float)
    xs, ys = [], []
    for i, ratio in enumerate(ratios):
        # A small slack so that T = d/k exactly (kT = d) counts as independent-possible.
        x = float(np.count_nonzero(Ts <= 1.0 / ratio + 1e-9)) - 0.5
        xs += [x, x]
        ys += [i - 0.5, i + 0.5]
    return xs, ys




def plot_phase(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Recovery phase diagram: median relative ``||A^ - A*||_F`` over ``T`` and ``k/d``.

    Parameters
    ----------
    table : DataFrame
        The ``phase`` table (columns ``d, T, k, seed, base_error``).
    band : str
        Unused (each cell shows the median and the share of seeds that recover); accepted
        so that every figure is drawn the same way.

    Returns
    -------
    matplotlib.figure.Figure
        A heat map (log colour scale) annotated with the median and the success fraction
        (relative error below ``RECOVERED``) of each cell; one per value of ``d`` (and of any
        other swept field), since cells of equal ``k/d`` at two ``d`` are different configs.
    """
    _require(table, ["d", "T", "k", "seed", "base_error"], "phase")
    check_band(band)
    return faceted(_draw_phase, table, ["T", "k"], name="phase_diagram", experiment="phase")


def _draw_phase(table: pd.DataFrame, fig=None):
    from matplotlib.colors import LogNorm

    table = table.assign(k_over_d=table["k"] / table["d"])
    median = table.pivot_table(index="k_over_d", columns="T", values="base_error",
                               aggfunc="median").sort_index()
    success = table.assign(ok=table["base_error"] < RECOVERED).pivot_table(
        index="k_over_d", columns="T", values="ok", aggfunc="mean").reindex_like(median)
    Ts, ratios = median.columns.to_numpy(), median.index.to_numpy()
    values = np.maximum(median.to_numpy(dtype=float), LOG_FLOOR)
    with house_style():
        width = max(2.4 + 0.8 * len(Ts), 5.6)
        fig = canvas(fig, (width, 2.6 + 0.6 * len(ratios)))
        ax = fig.subplots()
        image = ax.imshow(values, origin="lower", aspect="auto", cmap=SEQUENTIAL_CMAP,
                          norm=LogNorm(vmin=max(np.nanmin(values), LOG_FLOOR),
                                       vmax=max(np.nanmax(values), 1.0)))
        for i, ratio in enumerate(ratios):
            for j, T in enumerate(Ts):
                v = median.to_numpy()[i, j]
                if np.isnan(v):
                    continue
                dark = values[i, j] < np.sqrt(image.norm.vmin * image.norm.vmax)
                cell = table[(table["k_over_d"] == ratio) & (table["T"] == T)]
                tag(ax.text(j, i, f"{v:.0e}\n{success.to_numpy()[i, j]:.0%}", ha="center",
                            va="center", fontsize=8, color="white" if dark else "black"), cell)
        ax.set_xticks(range(len(Ts)), [str(t) for t in Ts])
        ax.set_yticks(range(len(ratios)), [f"{r:.2g}" for r in ratios])
        ax.grid(False)
        # kT <= d left of the line: the kT offset columns can be independent (the sufficient
        # condition of Theorem 3); cells right of it that recover show it is not necessary.
        xs, ys = kt_equals_d_steps(Ts, ratios)
        ax.plot(xs, ys, color=OKABE_ITO["reddish_purple"], linewidth=2.0, linestyle="--",
                label="kT = d (kT <= d to its left)")
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        ax.set_xlabel("retraining tasks T")
        ax.set_ylabel("rank ratio k/d")
        d_values = sorted(table["d"].unique())
        ax.set_title(wrap(f"LoRA-ML recovery of A* (population, d={', '.join(map(str, d_values))})"
                          f"\nmedian ||A^-A*||/||A*|| and share of seeds below {RECOVERED:.0e}",
                          width - 1.8, 10))
        fig.colorbar(image, ax=ax, label="median relative\n||A^ - A*||_F")
    return fig


def plot_rate(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Post-adaptation excess loss against ``n`` (log-log) with the ``k d sigma^2 / n`` line.

    Parameters
    ----------
    table : DataFrame
        The ``rate`` table (columns ``d, k, sigma, n, method, seed, excess_loss``; ``T`` and
        ``N`` if present). Several configs (a sweep file's grid) give one facet each.
    band : {"ci95", "minmax"}

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require(table, ["d", "k", "sigma", "n", "method", "seed", "excess_loss"], "rate")
    check_band(band)
    return faceted(_draw_rate, table, ["method"], name="adaptation_rate", experiment="rate",
                   band=band)


def _draw_rate(table: pd.DataFrame, *, band: str, fig=None):
    d, k, sigma = (table[c].iloc[0] for c in ("d", "k", "sigma"))
    with house_style():
        fig = canvas(fig, (5.6, 4.2))
        ax = fig.subplots()
        for method in ("SR", "LoRA-ML", "oracle"):
            sub = table[table["method"] == method]
            if not sub.empty:
                draw_band(ax, sub, "n", "excess_loss", _curve_label(method, sub),
                          method_style(method), band, markers=True)
        n = np.sort(table["n"].unique()).astype(float)
        ax.plot(n, k * d * sigma**2 / n, color=REFERENCE_COLOR, linestyle="-.",
                linewidth=1.2, label=r"reference $k d \sigma^2 / n$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("fine-tuning samples n")
        ax.set_ylabel("excess test loss after fine-tuning")
        ax.set_title(wrap(config_label(table, ("d", "k", "sigma", "T", "N")), 5.0, 10))
        ax.legend(loc="best")
        fig.suptitle(wrap("Excess loss after rank-k fine-tuning on n samples\n"
                          f"({band_caption(band, _seeds(table), log=True)})", 5.4, 12))
    return fig


def plot_landscape(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Histograms over random starts of the final objective and of ``||A^ - A*||``, per ``T``.

    Parameters
    ----------
    table : DataFrame
        The ``landscape`` table (columns ``T, objective, base_error``; one row per start).
    band : str
        Unused (histograms); accepted so that every figure is drawn the same way.

    Returns
    -------
    matplotlib.figure.Figure
        One row per T, one facet per value of any other swept field (d, k, starts, solver);
        log-spaced bins shared by the rows of a facet, values below ``LANDSCAPE_FLOOR``
        drawn at it.
    """
    _require(table, ["T", "objective", "base_error"], "landscape")
    check_band(band)
    return faceted(_draw_landscape, table, ["T"], name="landscape", experiment="landscape")


def _draw_landscape(table: pd.DataFrame, fig=None):
    Ts = sorted(table["T"].unique())
    # Every row shares each column's bins, so T = 2 and T = 3 compare at a glance.
    bins = {}
    for column in ("objective", "base_error"):
        values = np.maximum(table[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
        low = np.floor(np.log10(values.min()))
        high = max(np.ceil(np.log10(values.max())), low + 1)
        bins[column] = np.logspace(low, high, 40)
    columns = (("objective", "final excess objective F(A^, U^)"),
               ("base_error", "relative ||A^ - A*||_F"))
    with house_style():
        fig = canvas(fig, (8.0, 2.7 * len(Ts) + 1.0))
        axes = fig.subplots(len(Ts), 2, squeeze=False)
        for row, T in enumerate(Ts):
            sub = table[table["T"] == T]
            for col, (column, xlabel) in enumerate(columns):
                ax = axes[row, col]
                values = np.maximum(sub[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
                _, _, patches = ax.hist(values, bins=bins[column],
                                        color=method_style("LoRA-ML")["color"], alpha=0.85)
                for patch in patches:
                    tag(patch, sub)
                ax.set_xscale("log")
                ax.set_xlabel(xlabel)
                ax.set_ylabel("random starts")
                ax.set_title(f"T = {T}: {len(sub)} starts, median {np.median(sub[column]):.1e}")
        fixed = ", ".join(["population", *filter(None, [config_label(
            table, ("d", "k", "solver", "starts"), fig)])])
        fig.suptitle(wrap(f"LoRA-ML ({fixed}) from random starts:\n"
                          "final objective and distance of the base to A*", 7.8, 12))
    return fig
