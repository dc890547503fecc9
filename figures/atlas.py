"""The figure of the ``atlas`` experiment, drawn from its table alone.

Three rows of heat maps over (d, T), one column per adapter rank k (and per value of any other
config field, so rows of different configs are never pooled): the share of families with a
certified spurious local minimum, the share of paper-protocol runs that reach ``A*`` within the
round budget, and the median number of rounds those runs took. Each cell is annotated with its
counts; a dashed staircase separates the cells where ``kT > d`` (left: the offset columns
cannot be independent) from the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lowrank_theory.figures.bands import DEFAULT_BAND, check_band
from lowrank_theory.figures.facets import faceted, tag
from lowrank_theory.figures.plots import _require
from lowrank_theory.figures.style import OKABE_ITO, SEQUENTIAL_CMAP, canvas, house_style

__all__ = ["COLUMNS", "CONFIG_FIELDS", "atlas_summary", "kt_boundary", "plot_atlas"]

#: Columns the figure reads.
COLUMNS = ["config_hash", "seed", "d", "k", "T", "search_starts", "rounds", "spurious",
           "protocol_reached", "protocol_rounds"]
#: The config fields of an atlas cell; every one of them has a visual channel.
CONFIG_FIELDS = ("d", "k", "T", "search_starts", "rounds")
#: Fields that split the columns of panels (d and T are the axes of each heat map).
PANEL_FIELDS = ("k", "search_starts", "rounds")


def atlas_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per atlas cell (config): counts and the median rounds to ``A*``.

    Parameters
    ----------
    table : DataFrame
        The ``atlas`` table (one row per family).

    Returns
    -------
    DataFrame
        Columns ``d, k, T, search_starts, rounds, kT_over_d, families, spurious`` (families
        with a certified spurious minimum), ``reached`` (runs at ``A*`` within the budget) and
        ``median_rounds`` (over the runs that reached it; NaN if none did), sorted by
        ``k, d, T``.

    Raises
    ------
    ValueError
        If two configs share the values of :data:`CONFIG_FIELDS` (their rows would be pooled),
        or a family appears twice in one config.

    Examples
    --------
    >>> rows = pd.DataFrame({"config_hash": ["a", "a", "b"], "seed": [0, 1, 0], "d": [3, 3, 6],
    ...     "k": 1, "T": 3, "search_starts": 4, "rounds": 100, "spurious": [True, False, False],
    ...     "protocol_reached": [True, True, False], "protocol_rounds": [10.0, 30.0, np.nan]})
    >>> atlas_summary(rows)[["d", "families", "spurious", "reached", "median_rounds"]]
       d  families  spurious  reached  median_rounds
    0  3         2         1        2           20.0
    1  6         1         0        0            NaN
    """
    _require(table, COLUMNS, "atlas")
    keys = list(CONFIG_FIELDS)
    per_key = table.groupby(keys)["config_hash"].nunique()
    if (per_key > 1).any():
        raise ValueError(f"configs {per_key[per_key > 1].index.tolist()} of the atlas table "
                         "differ in a field the figure does not show; draw them apart")
    if table.duplicated(["config_hash", "seed"]).any():
        raise ValueError("the atlas table has a family (config, seed) twice")
    summary = table.groupby(keys).agg(
        families=("seed", "size"), spurious=("spurious", "sum"),
        reached=("protocol_reached", "sum"), median_rounds=("protocol_rounds", "median"),
    ).reset_index()
    summary.insert(len(keys), "kT_over_d", summary["k"] * summary["T"] / summary["d"])
    return summary.sort_values(["k", "d", "T"], ignore_index=True)


def _rounds_label(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _panel(ax, cells: pd.DataFrame, rows: pd.DataFrame, ds: list[int], Ts: list[int],
           quantity: str, image_kw):
    """One heat map over (d, T): the share (or median) of each cell, annotated with counts.

    ``cells`` is the panel's summary (one row per cell), ``rows`` the table rows behind it;
    each annotation is tagged with the rows of its cell.
    """
    grid = np.full((len(Ts), len(ds)), np.nan)
    for row in cells.itertuples():
        i, j = Ts.index(row.T), ds.index(row.d)
        if quantity == "median_rounds":
            grid[i, j] = row.median_rounds
            text = ("none\nreached" if np.isnan(row.median_rounds) else
                    f"{_rounds_label(row.median_rounds)}\nof {row.reached}")
        else:
            count = getattr(row, quantity)
            grid[i, j] = count / row.families
            text = f"{count / row.families:.0%}\n{count}/{row.families}"
        label = ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7,
                              "linewidth": 0})
        tag(label, rows[(rows["d"] == row.d) & (rows["T"] == row.T)])
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto",
                      cmap=SEQUENTIAL_CMAP, **image_kw)
    k = int(cells["k"].iloc[0])
    ax.plot(*kt_boundary(ds, Ts, k), color=OKABE_ITO["vermillion"], linewidth=2.2,
            linestyle="--", label="kT = d (kT > d to its left)")
    ax.set_xlim(-0.5, len(ds) - 0.5)
    ax.set_ylim(-0.5, len(Ts) - 0.5)
    ax.set_xticks(range(len(ds)), [str(d) for d in ds])
    ax.set_yticks(range(len(Ts)), [str(t) for t in Ts])
    ax.grid(False)
    return image


def kt_boundary(ds: list[int], Ts: list[int], k: int) -> tuple[list[float], list[float]]:
    """The staircase between the cells with ``kT > d`` (left) and ``kT <= d`` (right).

    In image coordinates of a heat map with columns ``ds`` and rows ``Ts`` (cell centres at
    integers): in row ``i`` the boundary is at ``x = #{d in ds : d < k T_i} - 1/2``.

    Examples
    --------
    >>> kt_boundary([3, 6, 10], [3, 5], k=2)
    ([0.5, 0.5, 1.5, 1.5], [-0.5, 0.5, 0.5, 1.5])
    """
    xs, ys = [], []
    for i, T in enumerate(Ts):
        x = sum(d < k * T for d in ds) - 0.5
        xs += [x, x]
        ys += [i - 0.5, i + 0.5]
    return xs, ys


def plot_atlas(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Heat maps over (d, T) of the atlas's three quantities, one column per k.

    Parameters
    ----------
    table : DataFrame
        The ``atlas`` table.
    band : str
        Unused (each cell shows counts over families); accepted so that every figure is drawn
        the same way.

    Returns
    -------
    matplotlib.figure.Figure
        Rows: share of families with a certified spurious local minimum (of the search's
        budget: "not found" is not "none exists"); share of paper-protocol runs at ``A*``
        (relative error below 1e-6) within the round budget; median rounds to 1e-6 of the runs
        that got there (log colour scale). Columns: k, and any other config field that varies.
        Annotations give the counts; left of the dashed staircase ``kT > d``.
    """
    _require(table, COLUMNS, "atlas")
    check_band(band)
    # Every config field has a channel (d and T the axes, the others the panel columns), so
    # the faceting rule finds nothing to split; it still refuses a table it cannot tell apart.
    return faceted(_draw_atlas, table, list(CONFIG_FIELDS), name="atlas", experiment="atlas")


def _draw_atlas(table: pd.DataFrame, fig=None):
    from matplotlib.colors import LogNorm

    summary = atlas_summary(table)
    panels = list(summary.groupby(list(PANEL_FIELDS), sort=True))
    ds = sorted(summary["d"].unique().tolist())
    Ts = sorted(summary["T"].unique().tolist())
    finite = summary["median_rounds"].dropna()
    rounds_norm = (LogNorm(vmin=max(finite.min(), 1.0), vmax=max(finite.max(), 2.0))
                   if len(finite) else LogNorm(vmin=1.0, vmax=10.0))
    rows = (("spurious", "families with a certified\nspurious local minimum",
             {"vmin": 0.0, "vmax": 1.0}),
            ("reached", "paper-protocol runs at A*\nwithin the round budget",
             {"vmin": 0.0, "vmax": 1.0}),
            ("median_rounds", "median rounds to 1e-6\n(runs that got there)",
             {"norm": rounds_norm}))
    with house_style():
        fig = canvas(fig, (1.2 + 4.2 * len(panels), 7.6))
        axes = fig.subplots(3, len(panels), squeeze=False)
        for j, (key, cells) in enumerate(panels):
            k, starts, rounds = key
            behind = table[(table["k"] == k) & (table["search_starts"] == starts)
                           & (table["rounds"] == rounds)]
            for i, (quantity, label, image_kw) in enumerate(rows):
                ax = axes[i, j]
                image = _panel(ax, cells, behind, ds, Ts, quantity, image_kw)
                if i == 0:
                    ax.set_title(f"k = {k}\n(search: {starts} L-BFGS starts + the protocol's end;"
                                 f"\nbudget {rounds} rounds)", fontsize=9)
                if i == len(rows) - 1:
                    ax.set_xlabel("dimension d")
                if j == 0:
                    ax.set_ylabel(f"{label}\n\ntasks T")
                if j == len(panels) - 1:
                    fig.colorbar(image, ax=axes[i, :].tolist(), shrink=0.9)
        fig.suptitle("Landscape atlas: random population families (Sigma = I), paper protocol "
                     "from A0 = 0, U0 ~ N(0, 0.1^2)\nleft of the dashed line kT > d (the offset "
                     "columns cannot be independent)")
    return fig
